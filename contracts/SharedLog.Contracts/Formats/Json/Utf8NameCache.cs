using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;
using SharedLog.Contracts.Model;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// Strings for short UTF-8 names, found by their bytes: a direct-mapped table, so a name costs a hash and a
/// byte comparison once it has been seen, with no transcoding or allocation. Memory is fixed (a slot keeps at
/// most <see cref="MaxNameBytes"/> bytes); names that collide replace each other and are made again.
/// One instance per thread: it is not safe for concurrent use.
/// </summary>
internal sealed class Utf8NameCache
{
    public const int MaxNameBytes = 64;

    private const int Slots = 256;

    private readonly byte[] _bytes = new byte[Slots * MaxNameBytes];
    private readonly int[] _lengths = new int[Slots];
    private readonly string?[] _names = new string?[Slots];

    /// <summary>The string for <paramref name="utf8"/> (at most <see cref="MaxNameBytes"/> bytes); invalid UTF-8 is refused.</summary>
    public string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > MaxNameBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(utf8), $"names longer than {MaxNameBytes} bytes are not cached");
        }

        int slot = (int)(Hash(utf8) & (Slots - 1));
        Span<byte> kept = _bytes.AsSpan(slot * MaxNameBytes, MaxNameBytes);
        if (_names[slot] is { } known && _lengths[slot] == utf8.Length && kept[..utf8.Length].SequenceEqual(utf8))
        {
            return known;
        }

        if (!Utf8.IsValid(utf8))
        {
            throw new PayloadDecodeException("invalid JSON payload: a member name is not valid UTF-8");
        }

        string name = Encoding.UTF8.GetString(utf8);
        utf8.CopyTo(kept);
        _lengths[slot] = utf8.Length;
        _names[slot] = name;
        return name;
    }

    /// <summary>Mixes the length and the first and last bytes (eight of each, or two overlapping four-byte reads for shorter names): enough to spread a record's few names.</summary>
    private static uint Hash(ReadOnlySpan<byte> utf8)
    {
        ulong head;
        ulong tail;
        if (utf8.Length >= 8)
        {
            head = BinaryPrimitives.ReadUInt64LittleEndian(utf8);
            tail = BinaryPrimitives.ReadUInt64LittleEndian(utf8[^8..]);
        }
        else if (utf8.Length >= 4)
        {
            // No stack buffer to zero and fill: most member names are this short.
            head = BinaryPrimitives.ReadUInt32LittleEndian(utf8);
            tail = BinaryPrimitives.ReadUInt32LittleEndian(utf8[^4..]);
        }
        else
        {
            head = 0;
            for (int i = 0; i < utf8.Length; i++)
            {
                head |= (ulong)utf8[i] << (8 * i);
            }

            tail = 0;
        }

        ulong mixed = (head * 0x9E3779B97F4A7C15UL) ^ (tail * 0xC2B2AE3D27D4EB4FUL) ^ (ulong)utf8.Length;
        return (uint)(mixed ^ (mixed >> 29) ^ (mixed >> 47));
    }
}
