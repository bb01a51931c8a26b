using SharedLog.Storage.ObjectStore;

namespace SharedLog.Storage.Tests.ObjectStore;

/// <summary>The S3 store against a real S3-compatible server (s3rver) on loopback.</summary>
public sealed class S3ObjectStoreTests : IClassFixture<S3rverFixture>
{
    private readonly S3rverFixture _s3;

    public S3ObjectStoreTests(S3rverFixture s3) => _s3 = s3;

    private S3ObjectStore Store(int retries = 3, TimeSpan? timeout = null) => new(new S3ObjectStoreOptions
    {
        ServiceUrl = _s3.ServiceUrl,
        Bucket = S3rverFixture.Bucket,
        AccessKey = S3rverFixture.AccessKey,
        SecretKey = S3rverFixture.SecretKey,
        MultipartThresholdBytes = 256 * 1024,
        PartSizeBytes = 100 * 1024,
        MaxRetries = retries,
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(10),
    });

    private static async Task<List<string>> KeysAsync(S3ObjectStore store, string prefix)
    {
        var keys = new List<string>();
        await foreach (ObjectInfo info in store.ListAsync(prefix))
        {
            keys.Add(info.Key);
        }

        return keys;
    }

    [Fact]
    public async Task PutGetRangeHeadListDelete()
    {
        using S3ObjectStore store = Store();
        string prefix = $"t-{Guid.NewGuid():N}/";
        byte[] data = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
        await store.PutAsync(prefix + "a", data);
        await store.PutAsync(prefix + "b", data.AsMemory(0, 10));
        Assert.Equal(data, await store.GetAsync(prefix + "a"));

        byte[] middle = new byte[1000];
        Assert.Equal(1000, await store.GetRangeAsync(prefix + "a", 2000, middle));
        Assert.Equal(data[2000..3000], middle);
        byte[] tail = new byte[1000];
        Assert.Equal(500, await store.GetRangeAsync(prefix + "a", 4500, tail));
        Assert.Equal(data[4500..], tail[..500]);

        Assert.Equal(5000, (await store.HeadAsync(prefix + "a"))!.Size);
        Assert.Null(await store.HeadAsync(prefix + "missing"));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => store.GetAsync(prefix + "missing"));
        Assert.Equal([prefix + "a", prefix + "b"], await KeysAsync(store, prefix));

        await store.DeleteAsync([prefix + "a", prefix + "never-existed"]);
        Assert.Equal([prefix + "b"], await KeysAsync(store, prefix));
    }

    [Fact]
    public async Task LargeObjectsGoUpInPartsAndReadBackWhole()
    {
        using S3ObjectStore store = Store();
        string key = $"multipart-{Guid.NewGuid():N}";
        byte[] data = new byte[700 * 1024];
        new Random(3).NextBytes(data);
        await store.PutAsync(key, data);
        Assert.Equal(data, await store.GetAsync(key));
        byte[] slice = new byte[300 * 1024];
        Assert.Equal(slice.Length, await store.GetRangeAsync(key, 250 * 1024, slice));
        Assert.Equal(data.AsSpan(250 * 1024, slice.Length).ToArray(), slice);
    }

    [Theory]
    [InlineData(40)] // about 60 KB: one PUT
    [InlineData(300)] // about 450 KB: parts of 100 KB that start and end inside pieces
    public async Task ObjectsInManyPiecesGoUpWhole(int pieceCount)
    {
        using S3ObjectStore store = Store();
        string key = $"pieces-{Guid.NewGuid():N}";
        (System.Buffers.ReadOnlySequence<byte> pieces, byte[] whole) = ObjectPieces.Make(pieceCount, 3001, seed: pieceCount);
        await store.PutAsync(key, pieces);
        Assert.Equal(whole, await store.GetAsync(key));
    }

    [Fact]
    public async Task ListingPagesPastAThousandKeys()
    {
        using S3ObjectStore store = Store();
        string prefix = $"many-{Guid.NewGuid():N}/";
        string[] keys = [.. Enumerable.Range(0, 1010).Select(i => $"{prefix}{i:D5}")];
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (key, ct) => await store.PutAsync(key, new byte[1], ct));
        Assert.Equal(keys, await KeysAsync(store, prefix));
        await store.DeleteAsync(keys);
        Assert.Empty(await KeysAsync(store, prefix));
    }

    [Fact]
    public async Task AStoreThatNeverAnswersTimesOutAsUnavailableAndTheCallersOwnCancelStaysACancel()
    {
        // Fault injection: an endpoint that accepts connections and never answers, so every request hits its timeout.
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<System.Net.Sockets.TcpClient>();
        using var accepting = new CancellationTokenSource();
        Task acceptLoop = Task.Run(async () =>
        {
            while (!accepting.IsCancellationRequested)
            {
                held.Add(await silent.AcceptTcpClientAsync(accepting.Token));
            }
        });
        S3ObjectStore Silent(TimeSpan timeout) => new(new S3ObjectStoreOptions
        {
            ServiceUrl = $"http://127.0.0.1:{((System.Net.IPEndPoint)silent.LocalEndpoint).Port}",
            Bucket = S3rverFixture.Bucket,
            AccessKey = S3rverFixture.AccessKey,
            SecretKey = S3rverFixture.SecretKey,
            MaxRetries = 0,
            RequestTimeout = timeout,
        });

        using S3ObjectStore store = Silent(TimeSpan.FromMilliseconds(300));
        try
        {
            // A timeout is the store being unavailable (retriable), not a cancellation: the background loops treated
            // it as their own shutdown and stopped.
            await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.GetAsync("stalled"));
            await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.PutAsync("stalled", new byte[10]));

            using var caller = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
            using S3ObjectStore patient = Silent(TimeSpan.FromSeconds(30));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => patient.GetAsync("stalled", caller.Token));
            Assert.True(caller.IsCancellationRequested);
        }
        finally
        {
            await accepting.CancelAsync();
            silent.Stop();
            await Assert.ThrowsAnyAsync<Exception>(() => acceptLoop);
            held.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task StoreOutageIsAClearRetriableErrorAndWorkResumesAfterwards()
    {
        using S3ObjectStore store = Store(retries: 1, timeout: TimeSpan.FromSeconds(2));
        string key = $"outage-{Guid.NewGuid():N}";
        _s3.Stop();
        try
        {
            var started = DateTime.UtcNow;
            await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.PutAsync(key, new byte[10]));
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), "the failure must come within a bounded time");
        }
        finally
        {
            await _s3.StartAsync();
        }

        // The same store resumes once the server answers again; a freshly started server may miss the short
        // request timeout on a loaded machine, so a failed attempt is retried until a deadline.
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await store.PutAsync(key, new byte[10]);
                break;
            }
            catch (ObjectStoreUnavailableException) when (DateTime.UtcNow < deadline)
            {
            }
        }

        Assert.Equal(10, (await store.HeadAsync(key))!.Size);
    }
}
