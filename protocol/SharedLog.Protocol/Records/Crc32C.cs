using System.IO.Hashing;

namespace SharedLog.Protocol.Records;

/// <summary>CRC32C (Castagnoli), the checksum of v2 record batches; hardware accelerated via System.IO.Hashing.</summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
}
