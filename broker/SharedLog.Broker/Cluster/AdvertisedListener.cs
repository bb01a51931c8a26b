namespace SharedLog.Broker.Cluster;

/// <summary>The address clients are told to use; known only once the listener has bound its port.</summary>
public sealed class AdvertisedListener
{
    public string Host { get; set; } = "127.0.0.1";

    public int Port { get; set; }

    /// <summary>The port the Kafka listener bound (the configured one, or the one the system chose for port 0).</summary>
    public int ListenPort { get; set; }
}
