using System.Text;
using SharedLog.Contracts.Model;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// Applies a contract's privacy rules to a decoded record before it is stored: <c>redact</c> replaces
/// a value with a fixed value of the same type, <c>hash</c> replaces a string or bytes value by its
/// keyed HMAC-SHA256 (stable, so hashed values still join), <c>drop</c> removes the field (the codec
/// writes the schema default or null). Paths are dotted field names; lists are walked element by element.
/// </summary>
public sealed class PrivacyRewriter(byte[] hashKey)
{
    public const string RedactedText = "****";

    // Field paths come from contracts, so there are few; split each once, not per record.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string[]> _splitPaths = new(StringComparer.Ordinal);

    private readonly KeyedHash _hmac = new(hashKey);

    /// <summary>Rewrites <paramref name="value"/> in place; returns whether anything changed, or a problem.</summary>
    public bool Apply(object? value, string path, PrivacyAction action, out string? problem) => Apply(value, SplitPath(path), action, out problem);

    /// <summary>As <see cref="Apply(object?, string, PrivacyAction, out string?)"/>, with the path already split (<see cref="FieldNames"/>, <see cref="SplitPath"/>).</summary>
    public bool Apply(object? value, string[] fieldNames, PrivacyAction action, out string? problem)
    {
        int visits = int.MaxValue;
        return Apply(value, fieldNames, action, ref visits, out problem);
    }

    /// <summary>
    /// Most values the rules of one side of one record may step through. A tag can name thousands of paths, each walked
    /// through every element of the lists on it: 5,000 tagged fields over 100,000 list items took seconds per record.
    /// </summary>
    public const int MaxVisitsPerRecord = 10_000_000;

    /// <summary>
    /// As <see cref="Apply(object?, string[], PrivacyAction, out string?)"/>, stepping through at most <paramref name="visitsLeft"/>
    /// values (lists' elements and fields), shared by the calls for one record; past it, a problem.
    /// </summary>
    public bool Apply(object? value, string[] fieldNames, PrivacyAction action, ref int visitsLeft, out string? problem)
    {
        problem = null;
        return Walk(value, fieldNames, 0, action, ref visitsLeft, ref problem);
    }

    /// <summary>A dotted path's field names, one per level.</summary>
    public static string[] FieldNames(string path) => path.Split('.');

    /// <summary>As <see cref="FieldNames"/>, kept for the paths asked for again (tagged fields, found per schema).</summary>
    public string[] SplitPath(string path) => _splitPaths.GetOrAdd(path, FieldNames);

    private bool Walk(object? node, string[] path, int index, PrivacyAction action, ref int visitsLeft, ref string? problem)
    {
        if (--visitsLeft < 0)
        {
            problem ??= $"masking this record steps through more than {MaxVisitsPerRecord} values (its lists' elements times the paths the privacy rules name)";
            return false;
        }

        switch (node)
        {
            case List<object?> list:
                bool anyChanged = false;
                foreach (object? item in list)
                {
                    anyChanged |= Walk(item, path, index, action, ref visitsLeft, ref problem);
                    if (visitsLeft < 0)
                    {
                        break;
                    }
                }

                return anyChanged;
            case DateTimeOffset or TimeSpan or NanoTimestamp or NanoDuration when index > 0:
                // A Protobuf Timestamp or Duration (one, or each of a repeated field's) is read as its time: a path to its
                // seconds or nanos found nothing to mask, and the record was stored with the time in clear. Refused, so
                // the record fails closed.
                problem ??= $"'{string.Join('.', path)}' names a part of a Timestamp or Duration, which is masked whole only: name '{string.Join('.', path[..index])}'";
                return false;
            case Dictionary<string, object?> fields:
                {
                    // A proto2 message holds a closed enum's undeclared numbers out of their field: masking the field (or
                    // anything under it, as a map entry) drops them, as a reader whose schema declares the number would see it.
                    bool forgot = fields is IHeldOutValues held && held.ForgetHeldOut(path[index]);
                    if (!fields.TryGetValue(path[index], out object? child))
                    {
                        return forgot;
                    }

                    if (index < path.Length - 1)
                    {
                        return Walk(child, path, index + 1, action, ref visitsLeft, ref problem) | forgot;
                    }

                    if (action == PrivacyAction.Drop)
                    {
                        fields.Remove(path[index]);
                        return true;
                    }

                    if (child is List<object?> values)
                    {
                        bool changed = forgot;
                        for (int i = 0; i < values.Count; i++)
                        {
                            changed |= Replace(values[i], action, ref problem, out object? replaced);
                            values[i] = replaced;
                        }

                        return changed;
                    }

                    bool replacedOne = Replace(child, action, ref problem, out object? newValue);
                    fields[path[index]] = newValue;
                    return replacedOne | forgot;
                }

            default:
                return false;
        }
    }

    private byte[] Hash(byte[] data)
    {
        byte[] digest = new byte[KeyedHash.DigestSize];
        _hmac.Compute(data, digest);
        return digest;
    }

    /// <summary>The lowercase hex HMAC of UTF-8 text.</summary>
    private string HashUtf8(ReadOnlySpan<byte> utf8)
    {
        Span<byte> digest = stackalloc byte[KeyedHash.DigestSize];
        _hmac.Compute(utf8, digest);
        return Convert.ToHexStringLower(digest);
    }

    /// <summary>
    /// Makes a text held as UTF-8 (a string field the gate decoded) hold its own hash instead: the field is written back from
    /// UTF-8, so the hash needs no string, and the object, which only its record's graph refers to, keeps the buffer for the
    /// next record that reuses it (see <see cref="RecordGraphPool"/>).
    /// </summary>
    private void HashInPlace(Utf8Text text)
    {
        Span<byte> digest = stackalloc byte[KeyedHash.DigestSize];
        _hmac.Compute(text.Utf8.Span, digest);
        Convert.TryToHexStringLower(digest, text.Own(2 * KeyedHash.DigestSize), out _);
    }

    /// <summary>
    /// A UUID field's hash is a UUID too (RFC 9562 version 8 from the first 16 bytes of the HMAC of its lowercase text), so
    /// readers that parse the logical type still read it, and equal UUIDs (in either case) still hash alike.
    /// </summary>
    private Guid HashUuid(Guid id)
    {
        Span<char> text = stackalloc char[36];
        id.TryFormat(text, out _, "D");
        Span<byte> utf8 = stackalloc byte[36];
        Encoding.ASCII.GetBytes(text, utf8);
        Span<byte> digest = stackalloc byte[KeyedHash.DigestSize];
        _hmac.Compute(utf8, digest);
        digest[6] = (byte)((digest[6] & 0x0F) | 0x80);
        digest[8] = (byte)((digest[8] & 0x3F) | 0x80);
        return new Guid(digest[..16], bigEndian: true);
    }

    /// <summary>The lowercase hex HMAC of a string's UTF-8 bytes, without allocating anything but the result.</summary>
    private string HashText(string text)
    {
        const int StackLimit = 512;
        int maxBytes = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = maxBytes > StackLimit ? System.Buffers.ArrayPool<byte>.Shared.Rent(maxBytes) : null;
        try
        {
            Span<byte> utf8 = rented is null ? stackalloc byte[StackLimit] : rented;
            int length = Encoding.UTF8.GetBytes(text, utf8);
            return HashUtf8(utf8[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private bool Replace(object? value, PrivacyAction action, ref string? problem, out object? replaced)
    {
        replaced = value;
        if (value is null)
        {
            return false;
        }

        if (action == PrivacyAction.Hash)
        {
            switch (value)
            {
                case string text:
                    replaced = HashText(text);
                    return true;
                case Utf8Text text:
                    HashInPlace(text);
                    return true;
                case byte[] bytes:
                    replaced = Hash(bytes);
                    return true;
                case UuidText uuid:
                    replaced = new UuidText(HashUuid(Guid.ParseExact(uuid.Text, "D")).ToString("D"));
                    return true;
                case List<object?> items:
                    // An array of arrays of strings: each string at any depth, as the apply check admits it.
                    bool hashed = false;
                    for (int i = 0; i < items.Count; i++)
                    {
                        hashed |= Replace(items[i], action, ref problem, out object? item);
                        items[i] = item;
                    }

                    return hashed;
                default:
                    problem = $"privacy: hash applies to string or bytes fields, not to this field's {PayloadValues.KindOf(value)} value";
                    return false;
            }
        }

        switch (value)
        {
            // A record or list is redacted leaf by leaf, so it keeps its shape (and its schema's types) with nothing left in it.
            case Dictionary<string, object?> fields:
                foreach (string name in fields.Keys.ToArray())
                {
                    Replace(fields[name], action, ref problem, out object? leaf);
                    fields[name] = leaf;
                }

                // Numbers its closed enums do not declare are held out of its fields: nothing of it is left in clear.
                (fields as IHeldOutValues)?.ForgetHeldOut(null);
                return true;
            case List<object?> items:
                for (int i = 0; i < items.Count; i++)
                {
                    Replace(items[i], action, ref problem, out object? item);
                    items[i] = item;
                }

                return true;
        }

        replaced = value switch
        {
            string or Utf8Text => RedactedText,
            UuidText => new UuidText(Guid.Empty.ToString("D")),
            long => 0L,
            ulong => 0UL,
            double => 0.0,
            bool => false,
            byte[] => Array.Empty<byte>(),
            DateTimeOffset or NanoTimestamp => DateTimeOffset.UnixEpoch,
            TimeSpan or NanoDuration => TimeSpan.Zero,
            _ => null,
        };
        return true;
    }
}
