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

    /// <summary>
    /// Whether any of the encoded headers has the key <paramref name="key"/>, or with <paramref name="prefixOnly"/> a key
    /// starting with it.
    /// </summary>
    public static bool Any(ReadOnlySpan<byte> rawHeaders, int headerCount, ReadOnlySpan<byte> key, bool prefixOnly = false)
    {
        foreach (RecordHeader header in HeaderEnumerator.Over(rawHeaders, headerCount))
        {
            if (Matches(header.Key, key, prefixOnly))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The record's headers without those <see cref="Any"/> matches, then the broker's <paramref name="added"/>: the whole
    /// header list to write in place of the encoded one. Null when the record has no such header, and its encoded headers
    /// can be kept as they are (with <paramref name="added"/> after them). Kept headers keep their keys' exact bytes.
    /// </summary>
    public static RecordHeaderValue[]? Without(ReadOnlySpan<byte> rawHeaders, int headerCount, ReadOnlySpan<byte> key, RecordHeaderValue[] added, bool prefixOnly = false)
    {
        if (headerCount == 0 || !Any(rawHeaders, headerCount, key, prefixOnly))
        {
            return null;
        }

        var kept = new List<RecordHeaderValue>(headerCount + added.Length);
        foreach (RecordHeader header in HeaderEnumerator.Over(rawHeaders, headerCount))
        {
            if (!Matches(header.Key, key, prefixOnly))
            {
                kept.Add(new RecordHeaderValue(header.KeyString, header.ValueIsNull ? null : header.Value.ToArray()) { KeyBytes = header.Key.ToArray() });
            }
        }

        kept.AddRange(added);
        return [.. kept];
    }

    private static bool Matches(ReadOnlySpan<byte> headerKey, ReadOnlySpan<byte> key, bool prefixOnly) =>
        prefixOnly ? headerKey.StartsWith(key) : headerKey.SequenceEqual(key);
}
