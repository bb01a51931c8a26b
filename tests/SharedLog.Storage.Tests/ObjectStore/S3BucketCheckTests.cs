using System.Net;
using System.Net.Sockets;
using System.Text;
using SharedLog.Storage.ObjectStore;

namespace SharedLog.Storage.Tests.ObjectStore;

/// <summary>
/// How the broker's start checks its bucket, against answers s3rver never gives (permissions, another account's
/// bucket): a stand-in endpoint on loopback answers bucket requests with chosen statuses, as fault injection.
/// </summary>
public sealed class S3BucketCheckTests
{
    /// <summary>Answers each request with the next (status, S3 error code) of a script, and records the methods asked.</summary>
    private sealed class ScriptedEndpoint : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Queue<(int Status, string? Code)> _script;

        /// <summary>The body a GET answered with 200 or 206 gets (as a store that ignores Range: the object from its start).</summary>
        public byte[]? ObjectBody { get; init; }

        /// <summary>The Content-Range header sent with a 206, if any.</summary>
        public string? ContentRange { get; init; }
        private readonly Task _serving;

        public ScriptedEndpoint(params (int Status, string? Code)[] script)
        {
            _script = new Queue<(int, string?)>(script);
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                Url = $"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}/";
                probe.Stop();
            }

            _listener.Prefixes.Add(Url);
            _listener.Start();
            _serving = Task.Run(ServeAsync);
        }

        public string Url { get; }

        public List<string> Asked { get; } = [];

        public void Dispose()
        {
            _listener.Close();
            _serving.Wait(TimeSpan.FromSeconds(10));
        }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                (int status, string? code) = (500, "InternalError");
                lock (Asked)
                {
                    Asked.Add(context.Request.HttpMethod);
                    if (_script.Count > 0)
                    {
                        (status, code) = _script.Dequeue();
                    }
                }

                context.Response.StatusCode = status;
                if (ObjectBody is { } objectBody && context.Request.HttpMethod == "GET" && status is 200 or 206)
                {
                    if (status == 206 && ContentRange is { } contentRange)
                    {
                        context.Response.Headers.Add("Content-Range", contentRange);
                    }

                    await context.Response.OutputStream.WriteAsync(objectBody);
                }
                else if (code is not null && context.Request.HttpMethod != "HEAD")
                {
                    byte[] body = Encoding.UTF8.GetBytes($"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>");
                    context.Response.ContentType = "application/xml";
                    await context.Response.OutputStream.WriteAsync(body);
                }

                context.Response.Close();
            }
        }
    }

    private static S3ObjectStore StoreAt(string url) => new(new S3ObjectStoreOptions
    {
        ServiceUrl = url,
        Bucket = "checked",
        AccessKey = "key",
        SecretKey = "secret",
        MaxRetries = 0,
        RequestTimeout = TimeSpan.FromSeconds(10),
    });

    [Fact]
    public async Task ABucketFoundIsUsedAsItIs()
    {
        using var endpoint = new ScriptedEndpoint((200, null));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await store.EnsureBucketAsync();
        Assert.Equal(["HEAD"], endpoint.Asked);
    }

    [Fact]
    public async Task AMissingBucketIsCreated()
    {
        using var endpoint = new ScriptedEndpoint((404, null), (200, null));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await store.EnsureBucketAsync();
        Assert.Equal(["HEAD", "PUT"], endpoint.Asked);
    }

    [Fact]
    public async Task CredentialsForObjectsOnlyDoNotStopTheStart()
    {
        // Least-privilege credentials (object reads and writes, no bucket permissions): HEAD is refused, so a small
        // object is written and deleted to prove the broker can work.
        using var endpoint = new ScriptedEndpoint((403, "AccessDenied"), (200, null), (204, null));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await store.EnsureBucketAsync();
        Assert.Equal(["HEAD", "PUT", "DELETE"], endpoint.Asked);
    }

    [Fact]
    public async Task ABucketThatRefusesWritesStopsTheStartSayingWhy()
    {
        // How AWS answers for another account's bucket, and for wrong keys: 403 to HEAD and to writes.
        using var endpoint = new ScriptedEndpoint((403, "AccessDenied"), (403, "AccessDenied"));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        ObjectStoreUnavailableException e = await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.EnsureBucketAsync());
        Assert.Contains("another account", e.Message, StringComparison.Ordinal);
        Assert.Equal(["HEAD", "PUT"], endpoint.Asked);
    }

    [Fact]
    public async Task ABucketNameTakenElsewhereIsAnError()
    {
        using var endpoint = new ScriptedEndpoint((404, null), (409, "BucketAlreadyExists"), (403, "AccessDenied"), (403, "AccessDenied"));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.EnsureBucketAsync());
        Assert.Equal(["HEAD", "PUT", "HEAD", "PUT"], endpoint.Asked);
    }

    [Fact]
    public async Task AMissingBucketIsAnUnavailableStoreNotAMissingObject()
    {
        // A missing object is damage (compaction sets it aside for good, reads report the partition's data lost); a
        // bucket gone for a while (a server restarting, an endpoint moved) is an outage to retry.
        using var endpoint = new ScriptedEndpoint((404, "NoSuchBucket"), (404, "NoSuchKey"));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.GetRangeAsync("data/x", 0, new byte[10]));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => store.GetRangeAsync("data/x", 0, new byte[10]));
    }

    [Fact]
    public async Task AStoreThatIgnoresTheRangeAskedForIsAnErrorNotOtherBytes()
    {
        byte[] whole = [.. Enumerable.Range(0, 100).Select(i => (byte)i)];
        byte[] read = new byte[10];

        // The whole object from byte 0 (status 200) to a read of bytes 50-59: its first ten bytes are not those.
        using (var ignoresRange = new ScriptedEndpoint((200, null)) { ObjectBody = whole })
        using (S3ObjectStore store = StoreAt(ignoresRange.Url))
        {
            ObjectStoreUnavailableException e = await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.GetRangeAsync("data/x", 50, read));
            Assert.Contains("without the range", e.Message, StringComparison.Ordinal);
        }

        // A 206 naming another range.
        using (var wrongRange = new ScriptedEndpoint((206, null)) { ObjectBody = whole[..10], ContentRange = "bytes 0-9/100" })
        using (S3ObjectStore store = StoreAt(wrongRange.Url))
        {
            await Assert.ThrowsAsync<ObjectStoreUnavailableException>(() => store.GetRangeAsync("data/x", 50, read));
        }

        // The same answers where they fit: the whole object for a read from 0, and the range asked for.
        using (var fromStart = new ScriptedEndpoint((200, null)) { ObjectBody = whole })
        using (S3ObjectStore store = StoreAt(fromStart.Url))
        {
            Assert.Equal(10, await store.GetRangeAsync("data/x", 0, read));
            Assert.Equal(whole[..10], read);
        }

        using (var rightRange = new ScriptedEndpoint((206, null)) { ObjectBody = whole[50..60], ContentRange = "bytes 50-59/100" })
        using (S3ObjectStore store = StoreAt(rightRange.Url))
        {
            Assert.Equal(10, await store.GetRangeAsync("data/x", 50, read));
            Assert.Equal(whole[50..60], read);
        }
    }

    [Fact]
    public async Task ABucketAnotherBrokerJustMadeIsUsed()
    {
        // Some servers answer BucketAlreadyExists to its owner too (a race between two brokers creating it).
        using var endpoint = new ScriptedEndpoint((404, null), (409, "BucketAlreadyExists"), (200, null));
        using S3ObjectStore store = StoreAt(endpoint.Url);
        await store.EnsureBucketAsync();
        Assert.Equal(["HEAD", "PUT", "HEAD"], endpoint.Asked);
    }
}
