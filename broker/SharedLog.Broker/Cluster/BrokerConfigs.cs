using System.Globalization;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// What DescribeConfigs reports for this broker (resource type 4), under Kafka's broker config names: the settings
/// the broker applies, and the broker-level defaults of topic configs (<c>log.retention.hours</c> and the like). All
/// are read-only, since they come from appsettings, the environment and the command line; tools such as
/// <c>kafka-configs --describe --entity-type brokers</c> and Kafka UIs show them.
/// </summary>
public static class BrokerConfigs
{
    /// <summary>ConfigSource of a value set in the broker's configuration (Kafka: set in server.properties).</summary>
    public const sbyte StaticBrokerConfigSource = 4;

    /// <summary>ConfigSource of a value left at its default.</summary>
    public const sbyte DefaultConfigSource = 5;

    // Kafka's ConfigType numbering in DescribeConfigs v3+.
    private const sbyte BooleanType = 1;
    public const sbyte StringType = 2;
    private const sbyte IntType = 3;
    private const sbyte LongType = 5;

    /// <summary>One broker config: its value, the default it replaces (equal when unset) and Kafka's type.</summary>
    public readonly record struct Entry(string Name, string Value, string Default, sbyte Type)
    {
        public bool IsDefault => Value == Default;

        public sbyte Source => IsDefault ? DefaultConfigSource : StaticBrokerConfigSource;
    }

    /// <summary>Every broker config this broker reports, sorted by name; the listeners as bound (<paramref name="listener"/>).</summary>
    public static List<Entry> Describe(BrokerOptions options, AdvertisedListener listener)
    {
        var defaults = new BrokerOptions();
        var entries = new List<Entry>
        {
            Int("node.id", options.NodeId, defaults.NodeId),
            Int("broker.id", options.NodeId, defaults.NodeId),
            new("listeners", Listener(options.Host, listener.ListenPort), Listener(defaults.Host, defaults.Port), StringType),
            new("advertised.listeners", Listener(listener.Host, listener.Port), Listener(defaults.Host, defaults.Port), StringType),
            new("log.dirs", options.DataDir, defaults.DataDir, StringType),
            new("auto.create.topics.enable", Bool(options.AutoCreateTopicsEnable), Bool(defaults.AutoCreateTopicsEnable), BooleanType),
            Int("num.partitions", options.NumPartitions, defaults.NumPartitions),
            // Any replication factor a client asks for is accepted: durability comes from the WAL and object store.
            Int("default.replication.factor", 1, 1),
            Int("socket.request.max.bytes", options.SocketRequestMaxBytes, defaults.SocketRequestMaxBytes),
            Long("connections.max.idle.ms", options.ConnectionsMaxIdleMs, defaults.ConnectionsMaxIdleMs),
            Int("fetch.max.bytes", options.FetchMaxBytes, defaults.FetchMaxBytes),
            Int("group.initial.rebalance.delay.ms", options.GroupInitialRebalanceDelayMs, defaults.GroupInitialRebalanceDelayMs),
            Int("group.min.session.timeout.ms", options.GroupMinSessionTimeoutMs, defaults.GroupMinSessionTimeoutMs),
            Int("group.max.session.timeout.ms", options.GroupMaxSessionTimeoutMs, defaults.GroupMaxSessionTimeoutMs),
            Int("offsets.retention.minutes", options.OffsetsRetentionMinutes, defaults.OffsetsRetentionMinutes),
            Long("offsets.retention.check.interval.ms", options.OffsetsRetentionCheckIntervalMs, defaults.OffsetsRetentionCheckIntervalMs),
            Int("producer.id.expiration.ms", options.ProducerIdExpirationMs, defaults.ProducerIdExpirationMs),
        };

        foreach (string topicConfig in TopicConfigs.Defaults.Keys)
        {
            if (TopicConfigs.TryGetDefaultSynonym(topicConfig, out (string Name, string Default) broker)
                && !entries.Exists(e => e.Name == broker.Name))
            {
                // The hours configs are ints in Kafka while their topic configs are longs in milliseconds.
                sbyte type = broker.Name.EndsWith(".hours", StringComparison.Ordinal) ? IntType : TopicConfigs.TypeOf(topicConfig);
                entries.Add(new Entry(broker.Name, broker.Default, broker.Default, type));
            }
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return entries;
    }

    private static string Listener(string host, int port) => $"PLAINTEXT://{host}:{port.ToString(CultureInfo.InvariantCulture)}";

    private static string Bool(bool value) => value ? "true" : "false";

    private static Entry Int(string name, int value, int defaultValue) =>
        new(name, value.ToString(CultureInfo.InvariantCulture), defaultValue.ToString(CultureInfo.InvariantCulture), IntType);

    private static Entry Long(string name, long value, long defaultValue) =>
        new(name, value.ToString(CultureInfo.InvariantCulture), defaultValue.ToString(CultureInfo.InvariantCulture), LongType);
}
