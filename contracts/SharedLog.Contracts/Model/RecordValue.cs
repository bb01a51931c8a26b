using System.Buffers;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Model;

/// <summary>
/// A decoded key or value as the contract gate sees it, whatever the schema language: a plain object
/// graph that rules evaluate and privacy policies rewrite.
/// <list type="bullet">
/// <item>record / struct / message / JSON object / map: <c>Dictionary&lt;string, object?&gt;</c> (ordinal keys, field order kept)</item>
/// <item>array / repeated / JSON array: <c>List&lt;object?&gt;</c></item>
/// <item>integers: <c>long</c>; unsigned (Protobuf uint32/uint64/fixed): <c>ulong</c>; float/double: <c>double</c></item>
/// <item>string and enum symbols: <c>string</c>; bytes and fixed: <c>byte[]</c>; boolean: <c>bool</c>; null: <c>null</c></item>
/// <item>timestamps (Avro timestamp-*, google.protobuf.Timestamp): <c>DateTimeOffset</c>; durations: <c>TimeSpan</c></item>
/// </list>
/// Unions decode to the value of their branch. Decoders bound depth, sizes and counts.
/// </summary>
public static class RecordValue
{
    /// <summary>Deepest nesting a decoded value may have.</summary>
    public const int MaxDepth = SchemaLimits.MaxDepth;

    /// <summary>Most elements (all lists and maps together) one decoded payload may hold.</summary>
    public const int MaxElements = 1_000_000;
}

/// <summary>A payload that does not decode against its schema, or breaks a decoding bound.</summary>
public sealed class PayloadDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Decodes and encodes serialized payloads (the bytes after Confluent's 5-byte header) with a parsed
/// schema of one language. For Protobuf the bytes start with the message-index path.
/// </summary>
public interface IPayloadCodec
{
    SchemaType Type { get; }

    /// <summary>Decodes the whole payload into the object graph of <see cref="RecordValue"/>; throws <see cref="PayloadDecodeException"/>.</summary>
    DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload);

    /// <summary>Encodes a (possibly rewritten) decoded payload back to bytes in the same layout <see cref="Decode"/> read.</summary>
    byte[] Encode(IParsedSchema schema, DecodedPayload payload);

    /// <summary>
    /// The same, with <paramref name="prefix"/> (e.g. Confluent's 5-byte header) in front: one exact-size
    /// array, so a rewritten record is not encoded and then copied again behind its header.
    /// </summary>
    byte[] Encode(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> prefix);

    /// <summary>
    /// Encodes a payload after a privacy rewrite that replaced the values at <paramref name="changedPaths"/>
    /// (field names per level) and removed nothing, <paramref name="prefix"/> first, into
    /// <paramref name="output"/> (the gate's pooled buffer of rewritten records, so no array per record);
    /// a codec that can splice the new values into the <paramref name="original"/> bytes does so instead
    /// of encoding the whole record again.
    /// </summary>
    void EncodeRewrite(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output) => output.Write(Encode(schema, payload, prefix));
}

/// <summary>A decoded payload: the value and, for Protobuf, which message of the file it is.</summary>
public sealed record DecodedPayload(object? Value, string? MessageFullName = null, int[]? MessageIndexes = null);
