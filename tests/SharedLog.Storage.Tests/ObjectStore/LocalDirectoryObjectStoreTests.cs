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
