using System.Security.Cryptography;
using System.Text;
using SharedLog.Contracts.Policy;
using Xunit;

namespace SharedLog.Contracts.Tests;

public sealed class KeyedHashTests
{
    [Fact]
    public void OnLinuxTheBlockFunctionOfOpenSslIsFoundAndUsed()
    {
        // The fast path is what the gate's benchmarks measure; a build that silently fell back would test only the fallback.
        Assert.Equal(OperatingSystem.IsLinux(), KeyedHash.UsesBlockFunction);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(20)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(131)]
    public void EveryMessageLengthAroundTheBlockBoundariesMatchesDotNetsHmac(int keyLength)
    {
        byte[] key = [.. Enumerable.Range(0, keyLength).Select(i => (byte)(i * 7 + 3))];
        var hash = new KeyedHash(key);
        Span<byte> digest = stackalloc byte[KeyedHash.DigestSize];
        for (int length = 0; length <= 300; length++)
        {
            byte[] message = [.. Enumerable.Range(0, length).Select(i => (byte)(i * 31 + length))];
            hash.Compute(message, digest);
            Assert.True(digest.SequenceEqual(HMACSHA256.HashData(key, message)), $"key {keyLength} bytes, message {length} bytes");
        }
    }

    [Fact]
    public void Rfc4231TestCase2()
    {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        var hash = new KeyedHash(Encoding.ASCII.GetBytes("Jefe"));
        byte[] digest = new byte[KeyedHash.DigestSize];
        hash.Compute(Encoding.ASCII.GetBytes("what do ya want for nothing?"), digest);
        Assert.Equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void ConcurrentCallersGetTheSameDigests()
    {
        var hash = new KeyedHash("secret"u8.ToArray());
        byte[][] messages = [.. Enumerable.Range(0, 64).Select(i => Encoding.UTF8.GetBytes($"user-{i}@example.com"))];
        string[] expected = [.. messages.Select(m => Convert.ToHexStringLower(HMACSHA256.HashData("secret"u8, m)))];
        Parallel.For(0, 8, _ =>
        {
            byte[] digest = new byte[KeyedHash.DigestSize];
            for (int round = 0; round < 200; round++)
            {
                for (int i = 0; i < messages.Length; i++)
                {
                    hash.Compute(messages[i], digest);
                    Assert.Equal(expected[i], Convert.ToHexStringLower(digest));
                }
            }
        });
    }

    [Fact]
    public void AShortDigestBufferIsRefused()
    {
        var hash = new KeyedHash([1, 2, 3]);
        Assert.Throws<ArgumentException>(() => hash.Compute([1], new byte[KeyedHash.DigestSize - 1]));
    }
}
