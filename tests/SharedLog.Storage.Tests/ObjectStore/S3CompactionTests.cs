using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Tests.Objects;

namespace SharedLog.Storage.Tests.ObjectStore;

/// <summary>One compaction round, and the janitor after it, against a real S3-compatible server (s3rver).</summary>
public sealed class S3CompactionTests : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private readonly S3rverFixture _s3;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharedlog-s3compact-" + Guid.NewGuid().ToString("N"));
    private S3ObjectStore _store = null!;
    private CompactionEngine _engine = null!;

    public S3CompactionTests(S3rverFixture s3) => _s3 = s3;

    public async Task InitializeAsync()
    {
        _store = new S3ObjectStore(new S3ObjectStoreOptions
        {
            ServiceUrl = _s3.ServiceUrl,
            Bucket = S3rverFixture.Bucket,
            AccessKey = S3rverFixture.AccessKey,
            SecretKey = S3rverFixture.SecretKey,
            RequestTimeout = TimeSpan.FromSeconds(10),
        });
        StorageOptions options = CompactionEngine.DefaultOptions();
        options.ObjectKeyPrefix = $"compact-{Guid.NewGuid():N}/";
        _engine = await CompactionEngine.OpenAsync(_root, _store, options);
    }

    public async Task DisposeAsync()
    {
        await _engine.DisposeAsync();
        _store.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task StreamSetObjectsAreMergedInS3AndTheReplacedOnesDeleted()
    {
        long[] streams = await _engine.CreateTopicAsync("s3-compacted", 2);
        await _engine.AppendAndUploadAsync(streams, batches: 10);
        await _engine.AppendAndUploadAsync(streams, batches: 10);
        List<ObjectMetadata> uploads = [.. await _engine.Metadata.ListObjectsAsync()];

        CompactionReport report = await _engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal((2, 2), (report.StreamSetObjectsReplaced, report.ObjectsWritten));
        foreach (long stream in streams)
        {
            Assert.Equal(ObjectKind.Stream, Assert.Single(await _engine.RangesAsync(stream)).Kind);
            await _engine.AssertReadsBackAsync(stream, 0);
            await _engine.AssertReadsBackAsync(stream, _engine.HighWatermark(stream) / 2);
        }

        Assert.Equal(2, (await _engine.Janitor(TimeSpan.FromMinutes(1)).RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(2))).ObjectsDeleted);
        foreach (ObjectMetadata upload in uploads)
        {
            Assert.False(await _engine.ExistsAsync(upload.Key));
        }

        foreach (long stream in streams)
        {
            await _engine.AssertReadsBackAsync(stream, 0);
        }
    }
}
