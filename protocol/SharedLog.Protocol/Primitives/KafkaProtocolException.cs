namespace SharedLog.Protocol;

/// <summary>
/// The one exception the protocol layer throws for input it cannot accept: truncated, oversized,
/// malformed or unsupported bytes from the network or from storage. Callers map it to a closed
/// connection (framing) or to a Kafka error code (payload).
/// </summary>
public sealed class KafkaProtocolException : Exception
{
    public KafkaProtocolException(string message, ErrorCode errorCode = ErrorCode.CorruptMessage)
        : base(message)
    {
        ErrorCode = errorCode;
    }

    public KafkaProtocolException(string message, Exception inner, ErrorCode errorCode = ErrorCode.CorruptMessage)
        : base(message, inner)
    {
        ErrorCode = errorCode;
    }

    /// <summary>The Kafka error code that best describes the problem to a client.</summary>
    public ErrorCode ErrorCode { get; }
}
