using Google.Protobuf.Reflection;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// A Protobuf schema given as the base64 of a serialized <c>FileDescriptorProto</c> instead of .proto text: what
/// confluent-kafka-python's ProtobufSerializer registers (for the schema and each of its imports), and what Confluent's
/// registry accepts next to text. It is rendered to .proto text, which is then parsed, stored and served as any other.
/// </summary>
internal static class ProtobufSerializedSchema
{
    /// <summary>
    /// Whether <paramref name="text"/> can only be a serialized descriptor: non-empty base64 (.proto text with anything
    /// in it has spaces, semicolons or braces, none of which base64 uses).
    /// </summary>
    public static bool Is(string text)
    {
        if (text.Length == 0 || text.Length % 4 != 0)
        {
            return false;
        }

        foreach (char c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '='))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The .proto text of a base64 serialized descriptor; <see cref="InvalidSchemaException"/> when it is not one.</summary>
    public static string ToText(string base64, string what)
    {
        FileDescriptorProto file;
        try
        {
            byte[] bytes = Convert.FromBase64String(base64);
            // protobuf-net bounds the nesting it reads (TypeModel.MaxDepth), so a hostile descriptor cannot exhaust the stack.
            file = ProtoBuf.Serializer.Deserialize<FileDescriptorProto>(bytes.AsSpan());
        }
        catch (Exception e) when (e is FormatException or ProtoBuf.ProtoException or EndOfStreamException or InvalidOperationException or OverflowException)
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: {what} is neither .proto text nor a base64 serialized FileDescriptorProto ({e.Message})", e);
        }

        if (file.Syntax is { Length: > 0 } syntax && syntax is not ("proto2" or "proto3"))
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: {what} is a serialized descriptor of syntax '{syntax}'; only proto2 and proto3 are supported");
        }

        return ProtobufCanonicalWriter.Write(file, new ProtobufTypeIndex([file]));
    }
}
