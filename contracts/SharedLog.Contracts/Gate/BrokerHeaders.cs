using SharedLog.Protocol.Records;

namespace SharedLog.Contracts.Gate;

/// <summary>
/// Record headers the broker writes (all named <c>sharedlog.*</c>): a producer's header of such a name is dropped
/// where the broker adds its own, so a consumer reading the first header of a name reads the broker's.
/// </summary>
public static class BrokerHeaders
{
    /// <summary>The prefix of every header the broker writes.</summary>
    public static ReadOnlySpan<byte> Prefix => "sharedlog."u8;

    /// <summary>Whether any of the encoded headers has a key starting with <paramref name="keyPrefix"/>.</summary>
    public static bool AnyStartingWith(ReadOnlySpan<byte> rawHeaders, int headerCount, ReadOnlySpan<byte> keyPrefix)
    {
        foreach (RecordHeader header in HeaderEnumerator.Over(rawHeaders, headerCount))
        {
            if (header.Key.StartsWith(keyPrefix))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The record's headers without those whose key starts with <paramref name="keyPrefix"/>, then the broker's
    /// <paramref name="added"/>: the whole header list to write in place of the encoded one. Null when the record has
    /// no such header, and its encoded headers can be kept as they are (with <paramref name="added"/> after them).
    /// </summary>
    public static RecordHeaderValue[]? Without(ReadOnlySpan<byte> rawHeaders, int headerCount, ReadOnlySpan<byte> keyPrefix, RecordHeaderValue[] added)
    {
        if (headerCount == 0 || !AnyStartingWith(rawHeaders, headerCount, keyPrefix))
        {
            return null;
        }

        var kept = new List<RecordHeaderValue>(headerCount + added.Length);
        foreach (RecordHeader header in HeaderEnumerator.Over(rawHeaders, headerCount))
        {
            if (!header.Key.StartsWith(keyPrefix))
            {
                kept.Add(new RecordHeaderValue(header.KeyString, header.ValueIsNull ? null : header.Value.ToArray()));
            }
        }

        kept.AddRange(added);
        return [.. kept];
    }
}
