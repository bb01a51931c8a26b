using System.Diagnostics;
using System.Globalization;
using SharedLog.Protocol.Records;
using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Streams;

/// <summary>
/// A real process is killed in the middle of an upload: after the object PUT but before the metadata
/// commit (the object is an orphan; the data must come back from the WAL and the orphan be removed),
/// and after the commit but before the WAL trim (the data must not appear twice).
/// </summary>
public sealed class UploadCrashTests : IDisposable
{
    private const int Batches = 40;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-uploadcrash-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private async Task RunHostUntilItDiesAsync(string phase)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "SharedLog.Storage.FaultHost.dll"), "upload", _directory, phase, Batches.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains($"acked {Batches}", await stdout, StringComparison.Ordinal);
        Assert.True(process.ExitCode != 0 && process.ExitCode != 3, $"the host should have been killed at {phase}; exit {process.ExitCode}: {await stderr}");
    }

    private async Task<(List<int> Sequences, ObjectJanitor Janitor, StreamStore Streams, IAsyncDisposable[] Owned, LocalDirectoryObjectStore Objects, SqliteMetadataStore Metadata)> RecoverAsync()
    {
        var metadata = new SqliteMetadataStore(UploadCrash.Metadata(_directory));
        await metadata.InitializeAsync();
        var wal = new FasterWriteAheadLog(UploadCrash.Wal(_directory));
        var objects = new LocalDirectoryObjectStore(UploadCrash.Objects(_directory));
        var streams = new StreamStore(new StorageOptions { UploadInterval = TimeSpan.FromHours(1), LogCacheBytes = 0 }, wal, objects, metadata);
        TopicMetadata topic = (await metadata.GetTopicAsync(UploadCrash.TopicName))!;
        streams.Open(await metadata.ClaimLeadershipAsync(topic.Partitions[0].StreamId, 1));
        await streams.StartAsync();
        long stream = topic.Partitions[0].StreamId;
        await streams.UploadAsync();

        var sequences = new List<int>();
        long next = 0;
        for (int guard = 0; guard < 1000 && next < streams.Get(stream).HighWatermark; guard++)
        {
            StreamReadResult read = await streams.ReadAsync(stream, next, 1 << 20);
            foreach (ReadOnlyMemory<byte> bytes in read.Batches)
            {
                foreach (SharedLog.Protocol.Records.Record record in RecordBatch.Parse(bytes).Records())
                {
                    if (record.Offset >= next)
                    {
                        sequences.Add(BitConverter.ToInt32(record.Key));
                        next = record.Offset + 1;
                    }
                }
            }
        }

        var janitor = new ObjectJanitor(objects, metadata, streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);
        return (sequences, janitor, streams, [streams, wal, metadata], objects, metadata);
    }

    private static async Task DisposeAllAsync(IAsyncDisposable[] owned)
    {
        foreach (IAsyncDisposable d in owned)
        {
            await d.DisposeAsync();
        }
    }

    [Fact]
    public async Task KillAfterPutBeforeCommitLosesNothingAndTheOrphanIsRemoved()
    {
        await RunHostUntilItDiesAsync("before-commit");
        var recovered = await RecoverAsync();
        try
        {
            Assert.Equal(Enumerable.Range(0, Batches), recovered.Sequences);
            IReadOnlyList<ObjectMetadata> objects = await recovered.Metadata.ListObjectsAsync();
            ObjectMetadata orphan = Assert.Single(objects, o => o.State == ObjectState.Prepared);
            Assert.NotNull(await recovered.Objects.HeadAsync(orphan.Key));

            JanitorReport report = await recovered.Janitor.RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(11));
            Assert.Equal(1, report.OrphansRemoved);
            Assert.Null(await recovered.Objects.HeadAsync(orphan.Key));
        }
        finally
        {
            await DisposeAllAsync(recovered.Owned);
        }
    }

    [Fact]
    public async Task KillAfterCommitBeforeTrimDoesNotDuplicate()
    {
        await RunHostUntilItDiesAsync("before-trim");
        var recovered = await RecoverAsync();
        try
        {
            Assert.Equal(Enumerable.Range(0, Batches), recovered.Sequences);
            Assert.Single(await recovered.Metadata.ListObjectsAsync(), o => o.State == ObjectState.Committed);
            Assert.Equal(0, recovered.Streams.PendingUploadBytes);
        }
        finally
        {
            await DisposeAllAsync(recovered.Owned);
        }
    }
}
