using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Tests.Objects;

/// <summary>The block cache's bound is in memory held: a block read direct is a slice of a larger aligned array.</summary>
public sealed class BlockCacheTests
{
    private static Func<Task<ReadOnlyMemory<byte>>> Slice(int arrayLength, int sliceLength, byte fill) => () =>
    {
        byte[] array = new byte[arrayLength];
        array.AsSpan().Fill(fill);
        return Task.FromResult<ReadOnlyMemory<byte>>(array.AsMemory(100, sliceLength));
    };

    [Fact]
    public async Task ABlockCountsTheWholeArrayItKeepsAliveAndEvictionFollowsThat()
    {
        var cache = new BlockCache(capacityBytes: 10_000);

        ReadOnlyMemory<byte> first = await cache.GetOrFetchAsync("object", 0, Slice(6_000, 1_000, 1));
        Assert.Equal(1_000, first.Length);
        Assert.Equal(6_000, cache.SizeBytes);

        // A second such block would hold 12,000 bytes: the older one goes, although their slices fit twice over.
        await cache.GetOrFetchAsync("object", 4096, Slice(6_000, 1_000, 2));
        Assert.Equal(6_000, cache.SizeBytes);

        long misses = cache.Misses;
        ReadOnlyMemory<byte> again = await cache.GetOrFetchAsync("object", 0, Slice(6_000, 1_000, 3));
        Assert.Equal(misses + 1, cache.Misses);
        Assert.Equal(3, again.Span[0]);

        // A block that is a whole array counts its length.
        await cache.GetOrFetchAsync("other", 0, () => Task.FromResult<ReadOnlyMemory<byte>>(new byte[2_500]));
        Assert.Equal(8_500, cache.SizeBytes);
    }
}
