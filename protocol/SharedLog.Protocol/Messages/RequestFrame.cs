using System.Buffers;

namespace SharedLog.Protocol.Messages;

/// <summary>One decoded request: its header and its body.</summary>
public readonly record struct DecodedRequest(RequestHeader Header, IApiMessage Body)
{
    public ApiKey ApiKey => (ApiKey)Header.RequestApiKey;

    public short Version => Header.RequestApiVersion;
}

/// <summary>
/// Decodes request frames and encodes response frames. A frame here is the bytes after the 4-byte
/// size prefix; the connection layer checks that prefix against its size limit before buffering.
/// </summary>
public static class RequestFrame
{
    /// <summary>Reads api key and version without decoding the rest (for routing and the ApiVersions fallback).</summary>
    public static bool TryPeekApi(ReadOnlySequence<byte> frame, out short apiKey, out short version)
    {
        var reader = new KafkaReader(frame);
        if (reader.Remaining < 4)
        {
            apiKey = version = 0;
            return false;
        }

        apiKey = reader.ReadInt16();
        version = reader.ReadInt16();
        return true;
    }

    /// <summary>Decodes header and body; unknown APIs and versions throw with <see cref="ErrorCode.UnsupportedVersion"/>.</summary>
    public static DecodedRequest Decode(ReadOnlySequence<byte> frame)
    {
        if (!TryPeekApi(frame, out short rawKey, out short version))
        {
            throw new KafkaProtocolException("Request frame is shorter than a request header.");
        }

        if (!ApiMessages.IsDefined(rawKey))
        {
            throw new KafkaProtocolException($"Unknown API key {rawKey}.", ErrorCode.UnsupportedVersion);
        }

        var apiKey = (ApiKey)rawKey;
        if (!ApiMessages.IsSupported(apiKey, version))
        {
            throw new KafkaProtocolException($"{apiKey} version {version} is not supported.", ErrorCode.UnsupportedVersion);
        }

        var reader = new KafkaReader(frame);
        var header = new RequestHeader();
        header.Read(ref reader, ApiMessages.RequestHeaderVersion(apiKey, version));
        IApiMessage body = ApiMessages.CreateRequest(apiKey);
        body.Read(ref reader, version);

        // Bytes after the body are ignored, as Kafka's broker ignores them: librdkafka 2.x's admin client sends
        // Metadata v12 with three more (01 00 00), and refusing them closed its connection.
        return new DecodedRequest(header, body);
    }

    /// <summary>Writes a whole request frame, size prefix included (used by tests and tools).</summary>
    public static void WriteRequest(IBufferWriter<byte> output, IApiMessage body, short version, int correlationId, string? clientId)
    {
        var header = new RequestHeader
        {
            RequestApiKey = (short)body.Api,
            RequestApiVersion = version,
            CorrelationId = correlationId,
            ClientId = clientId,
        };
        short headerVersion = ApiMessages.RequestHeaderVersion(body.Api, version);
        WriteFrame(output, header, headerVersion, body, version);
    }

    /// <summary>Writes a whole response frame, size prefix included, with the header version the API requires.</summary>
    public static void WriteResponse(IBufferWriter<byte> output, int correlationId, IApiMessage body, short version)
    {
        var header = new ResponseHeader { CorrelationId = correlationId };
        WriteFrame(output, header, ApiMessages.ResponseHeaderVersion(body.Api, version), body, version);
    }

    private static void WriteFrame(IBufferWriter<byte> output, IKafkaStruct header, short headerVersion, IKafkaStruct body, short version)
    {
        int size = header.ComputeSize(headerVersion) + body.ComputeSize(version);
        var writer = new KafkaWriter(output);
        writer.WriteInt32(size);
        header.Write(ref writer, headerVersion);
        body.Write(ref writer, version);
        writer.Flush();
        if (writer.Written != size + 4)
        {
            throw new InvalidOperationException($"Frame size {size} was computed but {writer.Written - 4} bytes were written.");
        }
    }
}
