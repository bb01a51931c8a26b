using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using SharedLog.Contracts.Policy;

namespace SharedLog.Benchmarks;

/// <summary>
/// The privacy policy's keyed hash of one short field value (an e-mail address): .NET's reusable HMAC context (what the
/// gate used before) against <see cref="KeyedHash"/>, which hashes the key's pad blocks once and each value through
/// OpenSSL's SHA-256 block function.
/// </summary>
[MemoryDiagnoser]
public class KeyedHashBenchmarks : IDisposable
{
    private static readonly byte[] Key = "bench-key"u8.ToArray();
    private static readonly byte[] Value = "someone@example.com"u8.ToArray();
    private readonly byte[] _digest = new byte[KeyedHash.DigestSize];
    private readonly KeyedHash _keyed = new(Key);
    private readonly IncrementalHash _incremental = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Key);

    [Benchmark(Baseline = true)]
    public byte IncrementalHmac()
    {
        _incremental.AppendData(Value);
        _incremental.GetHashAndReset(_digest);
        return _digest[0];
    }

    [Benchmark]
    public byte KeyedHashBlocks()
    {
        _keyed.Compute(Value, _digest);
        return _digest[0];
    }

    public void Dispose()
    {
        _incremental.Dispose();
        GC.SuppressFinalize(this);
    }
}
