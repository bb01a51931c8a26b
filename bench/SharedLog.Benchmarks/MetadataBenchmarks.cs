using BenchmarkDotNet.Attributes;
using SharedLog.Storage.Metadata;

namespace SharedLog.Benchmarks;

/// <summary>
/// The metadata lookup every read from objects makes: the next committed object ranges of one partition at an
/// offset (SQLite, the embedded default), in a store holding <see cref="Objects"/> uploads of 4 partitions each, read
/// from the middle of the partition.
/// </summary>
[MemoryDiagnoser]
public class MetadataBenchmarks : IAsyncDisposable
{
    [Params(400, 4000)]
    public int Objects { get; set; }

    private const long RecordsPerRange = 1000;

    private string _directory = null!;
    private SqliteMetadataStore _store = null!;
    private long _streamId;
    private long _offset;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "sharedlog-metadata-bench-" + Guid.NewGuid().ToString("N"));
        _store = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(_directory, "metadata.db") });
        await _store.InitializeAsync();
        TopicMetadata topic = await _store.CreateTopicAsync("bench", 4, new Dictionary<string, string>());
        long[] streams = [.. topic.Partitions.Select(p => p.StreamId)];
        foreach (long stream in streams)
        {
            await _store.ClaimLeadershipAsync(stream, 1);
        }

        for (int i = 0; i < Objects; i++)
        {
            PreparedObject prepared = await _store.PrepareObjectAsync("bench/");
            var ranges = streams.Select((stream, n) => new ObjectRange(stream, 1, i * RecordsPerRange, (i + 1) * RecordsPerRange, n * 1_000_000L, 1_000_000, i, i)).ToList();
            await _store.CommitObjectAsync(new ObjectCommit(prepared.ObjectId, 4_000_000, ranges, []));
        }

        _streamId = streams[2];
        _offset = Objects / 2 * RecordsPerRange + 10;
    }

    [Benchmark]
    public async Task<int> NextObjectRangesOfAPartition() => (await _store.GetObjectRangesAsync(_streamId, _offset, 8)).Count;

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }

        GC.SuppressFinalize(this);
    }
}
