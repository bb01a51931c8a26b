using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Objects;

/// <summary>
/// The storage engine on real parts (FasterLog WAL, SQLite metadata, the object store given) for the
/// compaction tests. It keeps every batch it appended, as stored (base offset assigned), so reads can be
/// compared byte for byte. Uploads are by hand and the log cache is off, so reads go to the objects.
/// </summary>
internal sealed record CompactionEngine(FasterWriteAheadLog Wal, IObjectStore Objects, SqliteMetadataStore Metadata, StreamStore Streams, StorageOptions Options)
    : IAsyncDisposable
{
    /// <summary>Far enough ahead that every object is past <see cref="StorageOptions.CompactionMinAge"/>.</summary>
    public static DateTimeOffset Later => DateTimeOffset.UtcNow.AddMinutes(11);

    private readonly Dictionary<long, List<byte[]>> _appended = [];
    private int _sequence;

    public static StorageOptions DefaultOptions() => new()
    {
        UploadInterval = TimeSpan.FromHours(1),
        BlockSizeBytes = 4096,
        LogCacheBytes = 0,
    };

    public static async Task<CompactionEngine> OpenAsync(string root, IObjectStore objects, StorageOptions? options = null)
    {
        options ??= DefaultOptions();
        var wal = new FasterWriteAheadLog(new WalOptions { Directory = Path.Combine(root, "wal"), PageSizeBits = 22, MemorySizeBits = 24, SegmentSizeBits = 26 });
        var metadata = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(root, "metadata.db") });
        await metadata.InitializeAsync();
        var streams = new StreamStore(options, wal, objects, metadata);
        await streams.StartAsync();
        return new CompactionEngine(wal, objects, metadata, streams, options);
    }

    public ObjectCompactor Compactor(IObjectStore? objects = null, IMetadataStore? metadata = null) => new(objects ?? Objects, metadata ?? Metadata, Options, Streams);

    public ObjectJanitor Janitor(TimeSpan? deletionGrace = null) => new(Objects, Metadata, Streams, TimeSpan.FromMinutes(10), deletionGrace ?? Options.DeletionGrace);

    /// <summary>Creates a topic (no time retention: the janitor must not trim it) led here; returns its streams.</summary>
    public async Task<long[]> CreateTopicAsync(string name, int partitions = 1)
    {
        TopicMetadata topic = await Metadata.CreateTopicAsync(name, partitions, new Dictionary<string, string> { ["retention.ms"] = "-1" });
        var streams = new long[partitions];
        for (int i = 0; i < partitions; i++)
        {
            Streams.Open(await Metadata.ClaimLeadershipAsync(topic.Partitions[i].StreamId, 1));
            streams[i] = topic.Partitions[i].StreamId;
            _appended[streams[i]] = [];
        }

        return streams;
    }

    /// <summary>Appends one batch of <paramref name="records"/> records with values of <paramref name="valueBytes"/> bytes; returns its base offset.</summary>
    public async Task<long> AppendAsync(long stream, int records, int valueBytes)
    {
        int sequence = ++_sequence;
        var builder = new RecordBatchBuilder(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        for (int i = 0; i < records; i++)
        {
            byte[] value = new byte[valueBytes];
            value.AsSpan().Fill((byte)(sequence + i));
            builder.Add(BitConverter.GetBytes(sequence), value, builder.BaseTimestamp + i);
        }

        byte[] batch = builder.Build();
        long offset = await Streams.AppendAsync(stream, batch);
        _appended[stream].Add(batch);
        return offset;
    }

    /// <summary>Appends <paramref name="batches"/> batches of varied sizes to each stream, then uploads them as one stream-set object.</summary>
    public async Task AppendAndUploadAsync(IEnumerable<long> streams, int batches)
    {
        foreach (long stream in streams)
        {
            for (int i = 0; i < batches; i++)
            {
                await AppendAsync(stream, 1 + (i % 4), 150 + (i * 97 % 700));
            }
        }

        Assert.True(await Streams.UploadAsync() > 0);
    }

    public long HighWatermark(long stream) => Streams.Get(stream).HighWatermark;

    /// <summary>The stored batches a read from <paramref name="from"/> must return: from the one holding that offset on.</summary>
    public List<byte[]> Expected(long stream, long from) =>
        _appended[stream].Where(b => BatchHeader.BaseOffset(b) + BatchHeader.LastOffsetDelta(b) >= from).ToList();

    /// <summary>Reads the stream from <paramref name="from"/> to its end and checks every batch against what was appended.</summary>
    public async Task AssertReadsBackAsync(long stream, long from, int maxBytes = 8192)
    {
        List<byte[]> expected = Expected(stream, from);
        var read = new List<byte[]>();
        long next = from;
        long end = HighWatermark(stream);
        for (int guard = 0; next < end && guard < 100_000; guard++)
        {
            StreamReadResult result = await Streams.ReadAsync(stream, next, maxBytes);
            Assert.NotEmpty(result.Batches);
            foreach (ReadOnlyMemory<byte> batch in result.Batches)
            {
                read.Add(batch.ToArray());
                next = BatchHeader.BaseOffset(batch.Span) + BatchHeader.LastOffsetDelta(batch.Span) + 1;
            }
        }

        AssertSameBatches(expected, read);
    }

    public static void AssertSameBatches(List<byte[]> expected, IReadOnlyList<byte[]> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].AsSpan().SequenceEqual(actual[i]), $"batch {i} (offset {BatchHeader.BaseOffset(expected[i])}) differs");
        }
    }

    /// <summary>Every object by id.</summary>
    public async Task<Dictionary<long, ObjectMetadata>> ObjectsByIdAsync() =>
        (await Metadata.ListObjectsAsync()).ToDictionary(o => o.ObjectId);

    /// <summary>The kinds of the committed objects holding the stream's data, in offset order.</summary>
    public async Task<List<(StreamObjectRange Range, ObjectKind Kind)>> RangesAsync(long stream)
    {
        Dictionary<long, ObjectMetadata> objects = await ObjectsByIdAsync();
        return [.. (await Metadata.GetObjectRangesAsync(stream, 0)).Select(r => (r, objects[r.ObjectId].Kind))];
    }

    public async Task<bool> ExistsAsync(string key) => await Objects.HeadAsync(key) is not null;

    public async ValueTask DisposeAsync()
    {
        await Streams.DisposeAsync();
        await Wal.DisposeAsync();
        await Metadata.DisposeAsync();
    }
}
