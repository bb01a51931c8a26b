namespace SharedLog.Storage.FaultHost;

/// <summary>
/// Deterministic payloads for crash tests: the bytes depend only on (stream, offset, length), so a
/// reader can verify a recovered entry without having seen it written.
/// </summary>
public static class WalTestPayload
{
    public static byte[] Create(long streamId, long baseOffset, int length)
    {
        var payload = new byte[length];
        Fill(payload, streamId, baseOffset);
        return payload;
    }

    public static bool Matches(ReadOnlySpan<byte> payload, long streamId, long baseOffset)
    {
        byte[] expected = Create(streamId, baseOffset, payload.Length);
        return payload.SequenceEqual(expected);
    }

    private static void Fill(Span<byte> payload, long streamId, long baseOffset)
    {
        ulong state = (ulong)(streamId * 1_000_003 + baseOffset) | 1;
        for (int i = 0; i < payload.Length; i++)
        {
            // xorshift64: cheap, deterministic, and every byte depends on the seed
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            payload[i] = (byte)state;
        }
    }
}
