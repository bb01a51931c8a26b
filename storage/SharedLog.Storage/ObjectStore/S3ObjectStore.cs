using System.Buffers;
using System.Net;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace SharedLog.Storage.ObjectStore;

/// <summary>Settings of the S3 object store; any S3-compatible endpoint works.</summary>
public sealed class S3ObjectStoreOptions
{
    /// <summary>Endpoint URL (for S3-compatible stores); empty means AWS S3 in <see cref="Region"/>.</summary>
    public string? ServiceUrl { get; set; }

    public string Region { get; set; } = "us-east-1";

    public string Bucket { get; set; } = string.Empty;

    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    /// <summary>Path-style addressing (bucket in the path), which most S3-compatible servers need.</summary>
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>Objects at least this large are uploaded in parts.</summary>
    public long MultipartThresholdBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>Part size of multipart uploads (S3's minimum is 5 MiB for all but the last part).</summary>
    public int PartSizeBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Retries the SDK makes (with jittered exponential backoff) before an operation fails.</summary>
    public int MaxRetries { get; set; } = 4;

    /// <summary>Time one request may take.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Bucket))
        {
            throw new ArgumentException("The S3 object store needs a bucket.");
        }

        if (PartSizeBytes < 1024 || MultipartThresholdBytes < PartSizeBytes)
        {
            throw new ArgumentException("S3 part size must be at least 1 KiB and no larger than the multipart threshold.");
        }

        if (MaxRetries < 0 || RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("S3 retries must be non-negative and the request timeout positive.");
        }
    }
}

/// <summary>
/// <see cref="IObjectStore"/> on S3 through AWSSDK.S3: single PUT below the multipart threshold,
/// multipart above it (aborted on failure), ranged GET, paginated LIST, batched DELETE. The SDK retries
/// transient failures with jittered backoff; what still fails becomes
/// <see cref="ObjectStoreUnavailableException"/>, and a missing key <see cref="ObjectNotFoundException"/>.
/// Chunked (aws-chunked) uploads are turned off: some S3-compatible servers store the chunk framing.
/// </summary>
public sealed class S3ObjectStore : IObjectStore, IDisposable
{
    private const int DeleteBatch = 1000;
    private readonly S3ObjectStoreOptions _options;
    private readonly AmazonS3Client _client;

    public S3ObjectStore(S3ObjectStoreOptions options)
    {
        options.Validate();
        _options = options;
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            MaxErrorRetry = options.MaxRetries,
            Timeout = options.RequestTimeout,
            RetryMode = RequestRetryMode.Standard,
        };
        if (!string.IsNullOrEmpty(options.ServiceUrl))
        {
            config.ServiceURL = options.ServiceUrl;
            config.AuthenticationRegion = options.Region;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        }

        _client = options.AccessKey is not null
            ? new AmazonS3Client(new BasicAWSCredentials(options.AccessKey, options.SecretKey), config)
            : new AmazonS3Client(config);
    }

    /// <summary>
    /// Makes sure the broker can use the bucket: found (HEAD), else created (embedded setups and tests). When HEAD is
    /// refused (403: credentials with object permissions only, as least-privilege setups grant; or another account's
    /// bucket; or wrong keys), a small object is written and deleted: if that is refused too, the start fails saying
    /// so, rather than a broker whose every upload would fail.
    /// </summary>
    public Task EnsureBucketAsync(CancellationToken cancellationToken = default) => GuardAsync("check bucket", async () =>
    {
        HttpStatusCode found = await HeadBucketAsync(cancellationToken).ConfigureAwait(false);
        if (found == HttpStatusCode.NotFound)
        {
            try
            {
                await _client.PutBucketAsync(new PutBucketRequest { BucketName = _options.Bucket }, cancellationToken).ConfigureAwait(false);
                return 0;
            }
            catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou")
            {
                return 0;
            }
            catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyExists")
            {
                // Made by another broker meanwhile (some servers answer this for their owner too), or another account's name.
                found = await HeadBucketAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        if (found != HttpStatusCode.OK)
        {
            await ProbeWriteAsync(cancellationToken).ConfigureAwait(false);
        }

        return 0;
    }, null, cancellationToken);

    /// <summary>Writes and deletes one small object; a refusal is an error naming the likely causes.</summary>
    private async Task ProbeWriteAsync(CancellationToken cancellationToken)
    {
        string key = $"sharedlog-probe/{Guid.NewGuid():N}";
        try
        {
            await _client.PutObjectAsync(new PutObjectRequest { BucketName = _options.Bucket, Key = key, ContentBody = "probe", UseChunkEncoding = false }, cancellationToken).ConfigureAwait(false);
            await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.Forbidden)
        {
            throw new ObjectStoreUnavailableException($"S3 refuses this broker's writes to bucket '{_options.Bucket}' ({e.ErrorCode}): it belongs to another account, or the credentials are wrong or lack s3:PutObject/s3:DeleteObject.", e);
        }
    }

    /// <summary>OK, NotFound or Forbidden for the bucket; other failures throw.</summary>
    private async Task<HttpStatusCode> HeadBucketAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _client.HeadBucketAsync(new HeadBucketRequest { BucketName = _options.Bucket }, cancellationToken).ConfigureAwait(false);
            return HttpStatusCode.OK;
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden)
        {
            return e.StatusCode;
        }
    }

    public Task PutAsync(string key, ReadOnlySequence<byte> data, CancellationToken cancellationToken = default) => GuardAsync($"put {key}", async () =>
    {
        if (data.Length < _options.MultipartThresholdBytes)
        {
            using var body = new ReadOnlySequenceStream(data);
            await _client.PutObjectAsync(new PutObjectRequest { BucketName = _options.Bucket, Key = key, InputStream = body, UseChunkEncoding = false, AutoCloseStream = false }, cancellationToken).ConfigureAwait(false);
            return 0;
        }

        await PutMultipartAsync(key, data, cancellationToken).ConfigureAwait(false);
        return 0;
    }, null, cancellationToken);

    private async Task PutMultipartAsync(string key, ReadOnlySequence<byte> data, CancellationToken cancellationToken)
    {
        InitiateMultipartUploadResponse upload = await _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
        try
        {
            var parts = new List<PartETag>();
            int number = 1;
            for (long offset = 0; offset < data.Length; offset += _options.PartSizeBytes, number++)
            {
                int length = (int)Math.Min(_options.PartSizeBytes, data.Length - offset);
                using var part = new ReadOnlySequenceStream(data.Slice(offset, length));
                UploadPartResponse uploaded = await _client.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = _options.Bucket,
                    Key = key,
                    UploadId = upload.UploadId,
                    PartNumber = number,
                    InputStream = part,
                    PartSize = length,
                    UseChunkEncoding = false,
                }, cancellationToken).ConfigureAwait(false);
                parts.Add(new PartETag(number, uploaded.ETag));
            }

            await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = upload.UploadId, PartETags = parts }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            try
            {
                await _client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = upload.UploadId }, CancellationToken.None).ConfigureAwait(false);
            }
            catch (AmazonServiceException)
            {
                // Best effort: an unfinished upload costs storage only until the bucket's lifecycle rule removes it.
            }

            throw;
        }
    }

    public Task<int> GetRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default) => GuardAsync($"get {key}", async () =>
    {
        if (destination.Length == 0)
        {
            return 0;
        }

        try
        {
            using GetObjectResponse response = await _client.GetObjectAsync(new GetObjectRequest
            {
                BucketName = _options.Bucket,
                Key = key,
                ByteRange = new ByteRange(offset, offset + destination.Length - 1),
            }, cancellationToken).ConfigureAwait(false);

            // A store (or a proxy) that ignores Range answers 200 with the object from its first byte: taken as the range,
            // those bytes would be served as another partition's records. Only a whole-object answer to a range from 0 fits.
            if (response.HttpStatusCode != HttpStatusCode.PartialContent && offset != 0)
            {
                throw new IOException($"the store answered {(int)response.HttpStatusCode} without the range asked for (bytes {offset}-{offset + destination.Length - 1})");
            }

            if (response.HttpStatusCode == HttpStatusCode.PartialContent && response.ContentRange is { Length: > 0 } range && !range.StartsWith($"bytes {offset}-", StringComparison.Ordinal))
            {
                throw new IOException($"the store answered range '{range}' to a read of bytes {offset}-{offset + destination.Length - 1}");
            }

            return await ReadFullyAsync(response.ResponseStream, destination, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return 0;
        }
    }, key, cancellationToken);

    public Task<byte[]> GetAsync(string key, CancellationToken cancellationToken = default) => GuardAsync($"get {key}", async () =>
    {
        using GetObjectResponse response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
        using var copy = new MemoryStream();
        await response.ResponseStream.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
        return copy.ToArray();
    }, key, cancellationToken);

    private static async Task<int> ReadFullyAsync(Stream stream, Memory<byte> destination, CancellationToken cancellationToken)
    {
        int total = 0;
        while (total < destination.Length)
        {
            int read = await stream.ReadAsync(destination[total..], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    public async Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GuardAsync($"head {key}", async () =>
            {
                GetObjectMetadataResponse head = await _client.GetObjectMetadataAsync(_options.Bucket, key, cancellationToken).ConfigureAwait(false);
                return (ObjectInfo?)new ObjectInfo(key, head.ContentLength, head.LastModified ?? DateTime.UtcNow);
            }, key, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? token = null;
        do
        {
            ListObjectsV2Response page = await GuardAsync($"list {prefix}", () => _client.ListObjectsV2Async(
                new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, ContinuationToken = token }, cancellationToken), null, cancellationToken).ConfigureAwait(false);
            foreach (S3Object entry in page.S3Objects ?? [])
            {
                yield return new ObjectInfo(entry.Key, entry.Size ?? 0, entry.LastModified ?? DateTime.UtcNow);
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
    }

    public async Task DeleteAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken = default)
    {
        foreach (string[] batch in keys.Chunk(DeleteBatch))
        {
            await GuardAsync("delete", () => _client.DeleteObjectsAsync(new DeleteObjectsRequest
            {
                BucketName = _options.Bucket,
                Objects = [.. batch.Select(k => new KeyVersion { Key = k })],
                Quiet = true,
            }, cancellationToken), null, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Maps SDK failures to the store's two exception types; the SDK has already retried. A request timeout (the
    /// SDK throws <see cref="TimeoutException"/>; an HTTP timeout can also surface as a cancelled task with a token
    /// of its own) is an unavailable store like any other failure; a cancellation is the caller's only when the
    /// caller's token is cancelled.
    /// </summary>
    private static async Task<T> GuardAsync<T>(string what, Func<Task<T>> operation, string? key, CancellationToken callerToken)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && key is not null && e.ErrorCode is "NoSuchKey" or "NotFound" or null or "")
        {
            throw new ObjectNotFoundException(key);
        }
        catch (AmazonServiceException e) when (e.StatusCode is HttpStatusCode.NotFound && key is not null && e.ErrorCode is not "NoSuchBucket")
        {
            throw new ObjectNotFoundException(key);
        }
        catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException or TimeoutException or OperationCanceledException && !callerToken.IsCancellationRequested)
        {
            throw new ObjectStoreUnavailableException($"S3 {what} failed: {e.Message}", e);
        }
    }

    public void Dispose() => _client.Dispose();
}
