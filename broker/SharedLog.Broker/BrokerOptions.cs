using SharedLog.Broker.Coordinators;
using SharedLog.Storage;

namespace SharedLog.Broker;

/// <summary>
/// Settings of the broker process (docs/configuration.md). Bound from the "Broker" section of
/// appsettings.json, SHAREDLOG_Broker__* environment variables, and the command line
/// (<c>--port</c>, <c>--http-port</c>, <c>--registry-port</c>, <c>--data-dir</c>, <c>--host</c>,
/// <c>--advertised-host</c>, <c>--node-id</c>).
/// </summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    /// <summary>Address the Kafka listener binds to.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Kafka listener port; 0 picks a free port (tests).</summary>
    public int Port { get; set; } = 9092;

    /// <summary>Host clients are told to connect to (Metadata); defaults to <see cref="Host"/>.</summary>
    public string? AdvertisedHost { get; set; }

    /// <summary>Port clients are told to connect to; defaults to the bound port.</summary>
    public int? AdvertisedPort { get; set; }

    /// <summary>HTTP port for health and metrics; 0 picks a free port, -1 disables it.</summary>
    public int HttpPort { get; set; } = 9644;

    /// <summary>Schema registry REST port (Confluent-compatible API); 0 picks a free port, -1 disables it.</summary>
    public int RegistryPort { get; set; } = 8081;

    /// <summary>Directory for the WAL, the local object store and the SQLite metadata of the embedded default.</summary>
    public string DataDir { get; set; } = "./data";

    public int NodeId { get; set; } = 1;

    /// <summary>Cluster id reported to clients.</summary>
    public string ClusterId { get; set; } = "sharedlog-embedded";

    /// <summary>Create topics that clients ask about (<c>auto.create.topics.enable</c>).</summary>
    public bool AutoCreateTopicsEnable { get; set; } = true;

    /// <summary>How long a new group waits for more members before its first rebalance (<c>group.initial.rebalance.delay.ms</c>).</summary>
    public int GroupInitialRebalanceDelayMs { get; set; } = 3000;

    /// <summary>The shortest session timeout a consumer group member may ask for (<c>group.min.session.timeout.ms</c>).</summary>
    public int GroupMinSessionTimeoutMs { get; set; } = GroupCoordinator.DefaultMinSessionTimeoutMs;

    /// <summary>The longest session timeout a consumer group member may ask for (<c>group.max.session.timeout.ms</c>).</summary>
    public int GroupMaxSessionTimeoutMs { get; set; } = GroupCoordinator.DefaultMaxSessionTimeoutMs;

    /// <summary>
    /// Partitions this broker serves in all topics together; a CreateTopics or CreatePartitions past it is refused with
    /// INVALID_PARTITIONS. Each partition costs about 2.5 KB of memory while idle, so this bounds what clients can make
    /// the broker hold.
    /// </summary>
    public int MaxPartitions { get; set; } = 100_000;

    /// <summary>
    /// <c>fetch.max.bytes</c> (KIP-541): the most a fetch response carries, whatever the request asks (the first batch
    /// still comes whole). Bounds the memory one fetch can make the broker copy. Default 55 MiB, as Kafka.
    /// </summary>
    public int FetchMaxBytes { get; set; } = 57_671_680;

    /// <summary>Partitions of auto-created topics and of CreateTopics with -1 (<c>num.partitions</c>).</summary>
    public int NumPartitions { get; set; } = 1;

    /// <summary>Largest request frame accepted (<c>socket.request.max.bytes</c>), checked before buffering.</summary>
    public int SocketRequestMaxBytes { get; set; } = 100 * 1024 * 1024;

    /// <summary>Idle connections are closed after this long (<c>connections.max.idle.ms</c>).</summary>
    public int ConnectionsMaxIdleMs { get; set; } = 600_000;

    /// <summary>
    /// Bytes one produce request's partitions on contract topics may hold between their check and their append (their
    /// stored batches, compressed as stored, and their quarantine copies, decompressed). Past it, its further contract-topic
    /// partitions are refused unread with REQUEST_TIMED_OUT (retried by every client) and the producer's retry carries them
    /// alone; the first is always checked. Bounds the memory a request of many partitions of highly compressed bad records
    /// can make the broker hold.
    /// </summary>
    public long MaxGatedBytesPerRequest { get; set; } = 256L << 20;

    /// <summary>
    /// Bytes of registry request bodies over 1 MiB (or chunked) held at once; such a request reserves its declared length
    /// (its size limit when chunked) before its body is read and waits its turn past it (see Http.RequestBodyBudget).
    /// </summary>
    public long MaxRequestBodyBytesInFlight { get; set; } = 64L << 20;

    /// <summary>How often the enforcement summary goes to <c>_contract_audit</c> and quarantine ages are refreshed.</summary>
    public int ContractSummaryIntervalSeconds { get; set; } = 60;

    /// <summary>
    /// How often the idempotent producer state of partitions that changed is saved to the metadata store.
    /// After a restart or leader change a partition replays its log from its last snapshot, so this bounds
    /// the replay to about this many seconds of data.
    /// </summary>
    public int ProducerSnapshotIntervalMs { get; set; } = 5000;

    /// <summary>
    /// A producer that has not written to a partition for this long is forgotten there
    /// (<c>producer.id.expiration.ms</c>); if it writes again, its batch is taken at the sequence it carries, as
    /// with Kafka (a retry of a batch from before that can then no longer be told apart). Checked when snapshots are taken.
    /// </summary>
    public int ProducerIdExpirationMs { get; set; } = 86_400_000;

    /// <summary>
    /// <c>offsets.retention.minutes</c> (KIP-211): a group without members loses its committed offsets after it has
    /// been empty, and without commits, this long; a consumer group with members loses only those of topics it no
    /// longer subscribes to. Default 7 days.
    /// </summary>
    public int OffsetsRetentionMinutes { get; set; } = 10_080;

    /// <summary><c>offsets.retention.check.interval.ms</c>: how often offsets are checked for expiry.</summary>
    public long OffsetsRetentionCheckIntervalMs { get; set; } = 600_000;

    /// <summary>
    /// Worker threads the .NET thread pool creates without delay (<c>ThreadPool.SetMinThreads</c>);
    /// 0 means the processor count plus 16. The WAL's device writes, object files, fsyncs and SQLite
    /// block a pool thread while they run; with the runtime's default minimum (one per core) the pool
    /// adds threads only slowly, so on a small machine one upload's fsyncs delay WAL commits and
    /// responses by tens of milliseconds. Plays the role of Kafka's <c>num.io.threads</c>.
    /// </summary>
    public int ThreadPoolMinThreads { get; set; }

    /// <summary>The minimum worker thread count to apply: <see cref="ThreadPoolMinThreads"/> or its default.</summary>
    public int ResolvedThreadPoolMinThreads => ThreadPoolMinThreads > 0 ? ThreadPoolMinThreads : Environment.ProcessorCount + 16;

    /// <summary>The address the Kafka listener binds: <see cref="Host"/>, an IP address or <c>localhost</c> (checked by <see cref="Validate"/>).</summary>
    public System.Net.IPAddress BindAddress => string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase)
        ? System.Net.IPAddress.Loopback
        : System.Net.IPAddress.Parse(Host);

    public void Validate()
    {
        if (!string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase) && !System.Net.IPAddress.TryParse(Host, out _))
        {
            throw new ArgumentException($"Broker:Host (--host) is the address the Kafka listener binds: an IP address such as 127.0.0.1 or 0.0.0.0, or localhost, not '{Host}'. The name clients connect to goes in Broker:AdvertisedHost (--advertised-host).");
        }

        // As Kafka refuses 0.0.0.0 in advertised.listeners: clients told to connect to it cannot.
        if (BindAddress.Equals(System.Net.IPAddress.Any) || BindAddress.Equals(System.Net.IPAddress.IPv6Any))
        {
            if (string.IsNullOrWhiteSpace(AdvertisedHost))
            {
                throw new ArgumentException($"Broker:Host {Host} listens on every interface, but clients cannot connect to that address: set Broker:AdvertisedHost (--advertised-host) to the name or address they use.");
            }
        }

        if (ProducerIdExpirationMs < 1)
        {
            throw new ArgumentException("producer.id.expiration.ms must be at least 1.");
        }

        if (FetchMaxBytes < 1024)
        {
            throw new ArgumentException("fetch.max.bytes must be at least 1024.");
        }

        if (GroupMinSessionTimeoutMs < 1 || GroupMaxSessionTimeoutMs < GroupMinSessionTimeoutMs)
        {
            throw new ArgumentException("group.min.session.timeout.ms must be at least 1 and group.max.session.timeout.ms at least as large.");
        }

        if (MaxPartitions < 1)
        {
            throw new ArgumentException("MaxPartitions must be at least 1.");
        }

        if (OffsetsRetentionMinutes < 1)
        {
            throw new ArgumentException("offsets.retention.minutes must be at least 1.");
        }

        if (OffsetsRetentionCheckIntervalMs < 1 || OffsetsRetentionCheckIntervalMs > StorageOptions.LongestInterval.TotalMilliseconds)
        {
            throw new ArgumentException($"offsets.retention.check.interval.ms must be at least 1 and at most {StorageOptions.LongestInterval.TotalMilliseconds:0} ({StorageOptions.LongestInterval.TotalDays} days).");
        }

        if (ProducerSnapshotIntervalMs < 100)
        {
            throw new ArgumentException("ProducerSnapshotIntervalMs must be at least 100.");
        }

        if (ThreadPoolMinThreads is < 0 or > 4096)
        {
            throw new ArgumentException("ThreadPoolMinThreads must be between 0 (automatic) and 4096.");
        }

        if (MaxRequestBodyBytesInFlight < 1)
        {
            throw new ArgumentException("MaxRequestBodyBytesInFlight must be at least 1.");
        }

        if (MaxGatedBytesPerRequest < 1)
        {
            throw new ArgumentException("MaxGatedBytesPerRequest must be at least 1.");
        }

        if (ContractSummaryIntervalSeconds < 1 || ContractSummaryIntervalSeconds > StorageOptions.LongestInterval.TotalSeconds)
        {
            throw new ArgumentException($"ContractSummaryIntervalSeconds must be at least 1 and at most {StorageOptions.LongestInterval.TotalSeconds:0} ({StorageOptions.LongestInterval.TotalDays} days).");
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"Broker port {Port} is out of range.");
        }

        if (HttpPort is < -1 or > 65535 || RegistryPort is < -1 or > 65535)
        {
            throw new ArgumentException("HTTP and registry ports must be -1 (off), 0 (any) or a port number.");
        }

        if (SocketRequestMaxBytes < 1024)
        {
            throw new ArgumentException("socket.request.max.bytes must be at least 1024.");
        }

        if (ConnectionsMaxIdleMs < 1000)
        {
            throw new ArgumentException("connections.max.idle.ms must be at least 1000.");
        }

        if (string.IsNullOrWhiteSpace(DataDir))
        {
            throw new ArgumentException("A data directory is required.");
        }
    }
}
