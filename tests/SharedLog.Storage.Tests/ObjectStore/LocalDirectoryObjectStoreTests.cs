using SharedLog.Storage.ObjectStore;

namespace SharedLog.Storage.Tests.ObjectStore;

public sealed class LocalDirectoryObjectStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharedlog-objects-" + Guid.NewGuid().ToString("N"));
    private readonly LocalDirectoryObjectStore _store;

    public LocalDirectoryObjectStoreTests() => _store = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = _root });

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task PutGetRangeHeadListDelete()
    {
        byte[] data = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        await _store.PutAsync("ab/data/1", data);
        await _store.PutAsync("ab/data/2", data.AsMemory(0, 10));
        await _store.PutAsync("cd/other/3", data.AsMemory(0, 5));
        Assert.Equal(data, await _store.GetAsync("ab/data/1"));

        byte[] middle = new byte[100];
        Assert.Equal(100, await _store.GetRangeAsync("ab/data/1", 450, middle));
        Assert.Equal(data[450..550], middle);
        byte[] tail = new byte[100];
        Assert.Equal(50, await _store.GetRangeAsync("ab/data/1", 950, tail));

        Assert.Equal(1000, (await _store.HeadAsync("ab/data/1"))!.Size);
        Assert.Null(await _store.HeadAsync("ab/data/9"));
        Assert.Equal(["ab/data/1", "ab/data/2"], await KeysAsync("ab/"));

        await _store.PutAsync("ab/data/2", data.AsMemory(0, 3));
        Assert.Equal(3, (await _store.GetAsync("ab/data/2")).Length);

        await _store.DeleteAsync(["ab/data/1", "missing/key"]);
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => _store.GetAsync("ab/data/1"));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("/absolute")]
    [InlineData("a//b")]
    [InlineData("a/./b")]
    [InlineData("")]
    public async Task KeysThatCouldEscapeAreRejected(string key)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _store.PutAsync(key, new byte[1]));
    }

    [Fact]
    public async Task ObjectsInMorePiecesThanOneGatherWriteTakesAreWrittenWhole()
    {
        // Linux takes at most 1,024 pieces per pwritev; an object from many small batches has more.
        (System.Buffers.ReadOnlySequence<byte> pieces, byte[] whole) = ObjectPieces.Make(2500, 97, seed: 5);
        await _store.PutAsync("ab/data/pieces", pieces);
        Assert.Equal(whole, await _store.GetAsync("ab/data/pieces"));
    }

    [Fact]
    public async Task LeftoverTempFilesAreNotObjects()
    {
        await _store.PutAsync("k/one", new byte[4]);
        File.WriteAllBytes(Path.Combine(_root, "k", "two.123.sharedlog-tmp"), new byte[4]);
        Assert.Equal(["k/one"], await KeysAsync(string.Empty));
    }

    [Fact]
    public async Task TempFilesAbandonedByACrashAreRemovedAtTheNextStart()
    {
        await _store.PutAsync("k/one", new byte[4]);
        string abandoned = Path.Combine(_root, "k", "two.123.sharedlog-tmp");
        string recent = Path.Combine(_root, "k", "three.456.sharedlog-tmp");
        File.WriteAllBytes(abandoned, new byte[4]);
        File.SetLastWriteTimeUtc(abandoned, DateTime.UtcNow - LocalDirectoryObjectStore.AbandonedTemporaryAge - TimeSpan.FromMinutes(5));
        File.WriteAllBytes(recent, new byte[4]);

        var restarted = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = _root });
        Assert.False(File.Exists(abandoned));
        Assert.True(File.Exists(recent), "a temporary file this recent may belong to a PUT under way");
        Assert.Equal(4, (await restarted.HeadAsync("k/one"))!.Size);
    }

    [Fact]
    public async Task ObjectsWrittenWithDirectIoReadBackExactlyAndStayOutOfThePageCache()
    {
        // The store uses direct I/O exactly where the file system takes it.
        bool directAvailable = DirectIo.Probe(Path.Combine(_root, "test-probe"), out string? refusal);
        Assert.True(_store.UsesDirectIo == directAvailable, $"direct I/O available: {directAvailable} ({refusal}), used: {_store.UsesDirectIo} ({_store.DirectIoRefusal})");

        // Sizes around the sector (4 KiB) and the 4 MiB chunk, whole and in odd pieces.
        const int Chunk = 4 * 1024 * 1024;
        var random = new Random(11);
        foreach (int size in new[] { 1, 4095, 4096, 4097, Chunk - 1, Chunk, Chunk + 1, (2 * Chunk) + 12_345 })
        {
            byte[] data = new byte[size];
            random.NextBytes(data);
            await _store.PutAsync($"d/whole-{size}", data);
            Assert.Equal(size, (await _store.HeadAsync($"d/whole-{size}"))!.Size);
            Assert.Equal(data, await _store.GetAsync($"d/whole-{size}"));
        }

        (System.Buffers.ReadOnlySequence<byte> pieces, byte[] whole) = ObjectPieces.Make(3000, 5000, seed: 3);
        await _store.PutAsync("d/pieces", pieces);
        if (_store.UsesDirectIo)
        {
            // Not read yet: a direct write leaves (nearly) none of the file's pages in the page cache.
            (int resident, int total) = ResidentPages(Path.Combine(_root, "d", "pieces"));
            Assert.True(resident * 10 < total, $"{resident} of {total} pages of a direct-written object are in the page cache");
        }

        Assert.Equal(whole, await _store.GetAsync("d/pieces"));
        byte[] range = new byte[10_000];
        Assert.Equal(10_000, await _store.GetRangeAsync("d/pieces", whole.Length - 10_000, range));
        Assert.Equal(whole[^10_000..], range);
    }

    [Fact]
    public async Task ASpreadPutKeepsToItsScheduleGoesFullSpeedWhenHurriedAndLeavesNothingWhenCancelled()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        string directory = Path.Combine(_root, "spread");
        var store = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = directory }, time);
        byte[] data = new byte[(16 * LocalDirectoryObjectStore.PacedChunkBytes) + 1000];
        new Random(23).NextBytes(data);
        var sequence = new System.Buffers.ReadOnlySequence<byte>(data);
        var oneSecond = new WriteSpread(TimeSpan.FromSeconds(1), CancellationToken.None);
        TimeSpan deadline = TimeSpan.FromSeconds(30);
        long WrittenSoFar(string name) => Directory.EnumerateFiles(Path.Combine(directory, "s"), name + ".*").Select(f => new FileInfo(f).Length).DefaultIfEmpty(0).Single();

        // Without a spread a PUT never waits on the clock, which here moves only when the test moves it.
        await store.PutAsync("s/plain", sequence, WriteSpread.None, CancellationToken.None).WaitAsync(deadline);
        Assert.Equal(data, await store.GetAsync("s/plain"));

        Task put = store.PutAsync("s/spread", sequence, oneSecond, CancellationToken.None);
        if (store.UsesDirectIo)
        {
            // The first 64 KiB are written, the rest waits for its share of the second; the object appears only when whole.
            Assert.False(put.IsCompleted);
            Assert.Null(await store.HeadAsync("s/spread"));
            Assert.Equal(LocalDirectoryObjectStore.PacedChunkBytes, WrittenSoFar("spread"));

            // Half the second later about half the object is written, and the PUT waits again.
            time.Advance(TimeSpan.FromMilliseconds(500));
            Wait.Until(() => WrittenSoFar("spread") >= data.Length * 4 / 10, "about half the object is written");
            Assert.InRange(WrittenSoFar("spread"), data.Length * 4 / 10, data.Length * 6 / 10);
            Assert.False(put.IsCompleted);
            time.Advance(TimeSpan.FromMilliseconds(500));
        }

        // Through the page cache (a file system without O_DIRECT) the kernel paces the disk writes: nothing waits.
        await put.WaitAsync(deadline);
        Assert.Equal(data, await store.GetAsync("s/spread"));

        // Hurried, a spread PUT finishes without the clock moving.
        using var hurry = new CancellationTokenSource();
        Task hurried = store.PutAsync("s/hurried", sequence, new WriteSpread(TimeSpan.FromSeconds(1), hurry.Token), CancellationToken.None);
        Assert.Equal(!store.UsesDirectIo, hurried.IsCompleted);
        await hurry.CancelAsync();
        await hurried.WaitAsync(deadline);
        Assert.Equal(data, await store.GetAsync("s/hurried"));

        using var cancel = new CancellationTokenSource();
        Task cancelled = store.PutAsync("s/cancelled", sequence, oneSecond, cancel.Token);
        await cancel.CancelAsync();
        if (store.UsesDirectIo)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(deadline));
            Assert.Null(await store.HeadAsync("s/cancelled"));
            Assert.Equal(0, WrittenSoFar("cancelled"));
        }
        else
        {
            await cancelled.WaitAsync(deadline);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RangesReadForBlocksAreExactAndSkipThePageCacheWhenObjectsAreDirect(bool directIo)
    {
        var store = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(_root, directIo ? "direct" : "buffered"), DirectIo = directIo });
        Assert.Equal(store.UsesDirectIo ? DirectIo.SectorSize : 0, store.DirectReadAlignment);
        var random = new Random(17);
        byte[] data = new byte[(1024 * 1024) + 777];
        random.NextBytes(data);
        await store.PutAsync("r/1", data);

        // Unaligned starts and ends, one byte, ranges ending at the object's last byte, the whole object.
        (long Position, int Length)[] ranges =
        [
            (0, 1), (1, 4095), (4095, 2), (4096, 4096), (5000, 100_000), (123_457, 1024 * 1024 - 123_457 + 777),
            (data.Length - 1, 1), (data.Length - 4097, 4097), (0, data.Length), (1024 * 1024, 777),
        ];
        foreach ((long position, int length) in ranges)
        {
            ReadOnlyMemory<byte> read = await SharedLog.Storage.Objects.ObjectReader.ReadRangeAsync(store, "r/1", position, length);
            Assert.True(data.AsSpan((int)position, length).SequenceEqual(read.Span), $"bytes {position}+{length} differ");

            // Blocks for the block cache are kept while readers catch up: never in the generations a young collection
            // copies (the pinned and large object heaps report generation 2 from the start).
            ReadOnlyMemory<byte> cached = await SharedLog.Storage.Objects.ObjectReader.ReadRangeAsync(store, "r/1", position, length, cached: true);
            Assert.True(data.AsSpan((int)position, length).SequenceEqual(cached.Span), $"cached bytes {position}+{length} differ");
            Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(cached, out ArraySegment<byte> holder));
            Assert.Equal(2, GC.GetGeneration(holder.Array!));
        }

        await Assert.ThrowsAsync<InvalidDataException>(() => SharedLog.Storage.Objects.ObjectReader.ReadRangeAsync(store, "r/1", data.Length - 10, 11));
        if (store.UsesDirectIo)
        {
            // Every range above went from the disk straight into the reader's memory.
            (int resident, int total) = ResidentPages(Path.Combine(_root, "direct", "r", "1"));
            Assert.True(resident * 10 < total, $"{resident} of {total} pages of the object are in the page cache after ranged reads");
        }
    }

    [Fact]
    public async Task DirectIoCanBeTurnedOff()
    {
        var buffered = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(_root, "buffered"), DirectIo = false });
        Assert.False(buffered.UsesDirectIo);
        byte[] data = new byte[100_000];
        new Random(5).NextBytes(data);
        await buffered.PutAsync("b/1", data);
        Assert.Equal(data, await buffered.GetAsync("b/1"));
    }

    /// <summary>How many of a file's pages the page cache holds (mmap + mincore).</summary>
    private static (int Resident, int Total) ResidentPages(string path)
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(path);
        long length = RandomAccess.GetLength(handle);
        int pageSize = Environment.SystemPageSize;
        int pages = (int)((length + pageSize - 1) / pageSize);
        nint map = Mmap(0, (nuint)length, ProtRead, MapShared, (int)handle.DangerousGetHandle(), 0);
        Assert.True(map != -1, "mmap failed");
        try
        {
            byte[] vector = new byte[pages];
            Assert.Equal(0, Mincore(map, (nuint)length, vector));

            return (vector.Count(b => (b & 1) != 0), pages);
        }
        finally
        {
            Assert.Equal(0, Munmap(map, (nuint)length));
        }
    }

    private const int ProtRead = 1;
    private const int MapShared = 1;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mmap")]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mincore")]
    private static extern int Mincore(nint address, nuint length, [System.Runtime.InteropServices.Out] byte[] vector);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(nint address, nuint length);

    private async Task<List<string>> KeysAsync(string prefix)
    {
        var keys = new List<string>();
        await foreach (ObjectInfo info in _store.ListAsync(prefix))
        {
            keys.Add(info.Key);
        }

        return keys;
    }
}
