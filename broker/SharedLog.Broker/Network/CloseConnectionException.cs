namespace SharedLog.Broker.Network;

/// <summary>
/// Thrown by a handler that has no response to give but must tell the client something went wrong: the
/// connection is closed after the responses before it, as Kafka does for a failed produce with acks=0, so the
/// client notices, refreshes its metadata and reconnects.
/// </summary>
public sealed class CloseConnectionException(string reason, string message) : Exception(message)
{
    /// <summary>The <c>reason</c> label of <c>sharedlog_connections_closed_total</c>.</summary>
    public string Reason { get; } = reason;
}
