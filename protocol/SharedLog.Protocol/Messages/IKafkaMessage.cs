using System.Buffers;

namespace SharedLog.Protocol.Messages;

/// <summary>A struct of the Kafka protocol that can read and write itself at a given version.</summary>
public interface IKafkaStruct
{
    void Read(ref KafkaReader reader, short version);

    void Write(ref KafkaWriter writer, short version);

    /// <summary>The exact number of bytes <see cref="Write"/> produces at <paramref name="version"/>.</summary>
    int ComputeSize(short version);

    /// <summary>True when every field still holds its spec default (decides whether tagged structs are sent).</summary>
    bool HasDefaultValues();
}

/// <summary>A top-level message (request, response, header or data) with its valid versions.</summary>
public interface IKafkaMessage : IKafkaStruct
{
    short LowestSupportedVersion { get; }

    short HighestSupportedVersion { get; }
}

/// <summary>A request or response body of one Kafka API.</summary>
public interface IApiMessage : IKafkaMessage
{
    ApiKey Api { get; }
}

public static class KafkaMessageExtensions
{
    /// <summary>Writes the message at <paramref name="version"/> and returns the bytes written.</summary>
    public static long WriteTo(this IKafkaStruct message, IBufferWriter<byte> output, short version)
    {
        var writer = new KafkaWriter(output);
        message.Write(ref writer, version);
        writer.Flush();
        return writer.Written;
    }

    /// <summary>Reads the message from the whole of <paramref name="input"/>; trailing bytes are an error.</summary>
    public static T ReadFrom<T>(this T message, ReadOnlySequence<byte> input, short version)
        where T : IKafkaStruct
    {
        var reader = new KafkaReader(input);
        message.Read(ref reader, version);
        if (!reader.End)
        {
            throw new KafkaProtocolException($"{reader.Remaining} unexpected bytes after {typeof(T).Name} v{version}.");
        }

        return message;
    }

    public static T ReadFrom<T>(this T message, ReadOnlyMemory<byte> input, short version)
        where T : IKafkaStruct =>
        message.ReadFrom(new ReadOnlySequence<byte>(input), version);

    public static byte[] ToArray(this IKafkaStruct message, short version)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(16, message.ComputeSize(version)));
        message.WriteTo(buffer, version);
        return buffer.WrittenSpan.ToArray();
    }
}
