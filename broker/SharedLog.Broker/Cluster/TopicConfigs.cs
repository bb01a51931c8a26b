using System.Globalization;

namespace SharedLog.Broker.Cluster;

/// <summary>Topic configs SharedLog knows, with Kafka's names and defaults, and their validation.</summary>
public static partial class TopicConfigs
{
    public const string RetentionMs = "retention.ms";

    /// <summary>Kafka's source of a config set on the topic.</summary>
    public const sbyte TopicConfigSource = 1;

    /// <summary>Kafka's source of a default set for the cluster at run time: what a data contract's retention is to its topics.</summary>
    public const sbyte ContractDefaultSource = 3;

    /// <summary>
    /// What a topic config is and where it comes from, as CreateTopics and DescribeConfigs report it: the topic's own value
    /// (TOPIC_CONFIG), else for <c>retention.ms</c> and <c>retention.bytes</c> what its data contract gives (<paramref name="contract"/>,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG), else the default (DEFAULT_CONFIG).
    /// </summary>
    public static (string Value, sbyte Source) Effective(string name, IReadOnlyDictionary<string, string> configs, string defaultValue, ContractRetention contract)
    {
        if (configs.TryGetValue(name, out string? set))
        {
            return (set, TopicConfigSource);
        }

        return ContractValue(name, contract) is { } given
            ? (given.ToString(CultureInfo.InvariantCulture), ContractDefaultSource)
            : (defaultValue, BrokerConfigs.DefaultConfigSource);
    }

    /// <summary>The value a data contract gives <paramref name="name"/>, for the two configs a contract can set.</summary>
    public static long? ContractValue(string name, ContractRetention contract) => name switch
    {
        RetentionMs => contract.Ms,
        RetentionBytes => contract.Bytes,
        _ => null,
    };
    public const string RetentionBytes = "retention.bytes";
    public const string CleanupPolicy = "cleanup.policy";
    public const string MaxMessageBytes = "max.message.bytes";
    public const string MessageTimestampType = "message.timestamp.type";
    public const string CompressionType = "compression.type";
    public const string MinInsyncReplicas = "min.insync.replicas";
    public const string SegmentBytes = "segment.bytes";
    private const string MessageFormatVersion = "message.format.version";

    /// <summary>What Kafka's MetadataVersionValidator takes, in shape: 0.8.0, 2.8, 3.0-IV1.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^[0-9]{1,2}\.[0-9]{1,2}(\.[0-9]{1,2})?(-IV[0-9]{1,2})?\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex MetadataVersionPattern();

    /// <summary>
    /// Kafka topic configs SharedLog accepts, stores and reports, but that change nothing here (segments, indexes,
    /// flushing, compaction lag, tiering and replication belong to Kafka's log layout): Kafka Streams, Connect and
    /// MirrorMaker set them, and refusing them failed their topic creation. The exception: the three
    /// message.timestamp.*.max.ms bounds, listed here for their ranges, which produce applies (<see cref="TimestampsOf"/>). Value: default (a boolean's is true or
    /// false), and the range Kafka takes for a number (Min null: a boolean or free text).
    /// </summary>
    private static readonly Dictionary<string, (string Default, double? Min, double Max)> AcceptedWithoutEffect = new(StringComparer.Ordinal)
    {
        ["compression.gzip.level"] = ("-1", -1, 9),
        ["compression.lz4.level"] = ("9", 1, 17),
        ["compression.zstd.level"] = ("3", -131072, 22),
        ["delete.retention.ms"] = ("86400000", 0, long.MaxValue),
        ["file.delete.delay.ms"] = ("60000", 0, long.MaxValue),
        ["flush.messages"] = ("9223372036854775807", 1, long.MaxValue),
        ["flush.ms"] = ("9223372036854775807", 0, long.MaxValue),
        ["follower.replication.throttled.replicas"] = ("", null, 0),
        ["index.interval.bytes"] = ("4096", 0, int.MaxValue),
        ["leader.replication.throttled.replicas"] = ("", null, 0),
        ["local.retention.bytes"] = ("-2", -2, long.MaxValue),
        ["local.retention.ms"] = ("-2", -2, long.MaxValue),
        ["max.compaction.lag.ms"] = ("9223372036854775807", 1, long.MaxValue),
        ["message.downconversion.enable"] = ("true", null, 0),
        ["message.format.version"] = ("3.0-IV1", null, 0),
        ["message.timestamp.after.max.ms"] = ("9223372036854775807", 0, long.MaxValue),
        ["message.timestamp.before.max.ms"] = ("9223372036854775807", 0, long.MaxValue),
        ["message.timestamp.difference.max.ms"] = ("9223372036854775807", 0, long.MaxValue),
        ["min.cleanable.dirty.ratio"] = ("0.5", 0, 1),
        ["min.compaction.lag.ms"] = ("0", 0, long.MaxValue),
        ["preallocate"] = ("false", null, 0),
        ["remote.log.copy.disable"] = ("false", null, 0),
        ["remote.log.delete.on.disable"] = ("false", null, 0),
        ["remote.storage.enable"] = ("false", null, 0),
        ["segment.index.bytes"] = ("10485760", 4, int.MaxValue),
        ["segment.jitter.ms"] = ("0", 0, long.MaxValue),
        ["segment.ms"] = ("604800000", 1, long.MaxValue),
        ["unclean.leader.election.enable"] = ("false", null, 0),
    };

    /// <summary>
    /// The broker config that gives each topic config its default, as Kafka names it in DescribeConfigs synonyms
    /// (<c>kafka-configs --describe --all</c> shows <c>DEFAULT_CONFIG:log.retention.hours=168</c> for
    /// <c>retention.ms</c>). Topic configs absent here have no broker
    /// config in Kafka, and their default is reported without a synonym.
    /// </summary>
    private static readonly Dictionary<string, string> DefaultSynonyms = new(StringComparer.Ordinal)
    {
        [RetentionMs] = "log.retention.hours",
        [RetentionBytes] = "log.retention.bytes",
        [CleanupPolicy] = "log.cleanup.policy",
        [MaxMessageBytes] = "message.max.bytes",
        [MessageTimestampType] = "log.message.timestamp.type",
        [CompressionType] = "compression.type",
        [MinInsyncReplicas] = "min.insync.replicas",
        [SegmentBytes] = "log.segment.bytes",
        ["compression.gzip.level"] = "compression.gzip.level",
        ["compression.lz4.level"] = "compression.lz4.level",
        ["compression.zstd.level"] = "compression.zstd.level",
        ["delete.retention.ms"] = "log.cleaner.delete.retention.ms",
        ["file.delete.delay.ms"] = "log.segment.delete.delay.ms",
        ["flush.messages"] = "log.flush.interval.messages",
        ["flush.ms"] = "log.flush.scheduler.interval.ms",
        ["index.interval.bytes"] = "log.index.interval.bytes",
        ["local.retention.bytes"] = "log.local.retention.bytes",
        ["local.retention.ms"] = "log.local.retention.ms",
        ["max.compaction.lag.ms"] = "log.cleaner.max.compaction.lag.ms",
        ["message.timestamp.after.max.ms"] = "log.message.timestamp.after.max.ms",
        ["message.timestamp.before.max.ms"] = "log.message.timestamp.before.max.ms",
        ["message.timestamp.difference.max.ms"] = "log.message.timestamp.difference.max.ms",
        ["message.downconversion.enable"] = "log.message.downconversion.enable",
        ["message.format.version"] = "log.message.format.version",
        ["min.cleanable.dirty.ratio"] = "log.cleaner.min.cleanable.ratio",
        ["min.compaction.lag.ms"] = "log.cleaner.min.compaction.lag.ms",
        ["preallocate"] = "log.preallocate",
        ["segment.index.bytes"] = "log.index.size.max.bytes",
        ["segment.jitter.ms"] = "log.roll.jitter.hours",
        ["segment.ms"] = "log.roll.hours",
        ["unclean.leader.election.enable"] = "unclean.leader.election.enable",
    };

    /// <summary>
    /// Topic configs whose first broker synonym in Kafka has no default of its own (<c>log.retention.ms</c>, <c>log.roll.ms</c>,
    /// <c>log.roll.jitter.ms</c>, <c>log.flush.interval.ms</c>): Kafka's DescribeConfigs lists synonyms from that name on, so
    /// their defaults (in <c>log.retention.hours</c> and the like) are not reported as synonyms unless that name is set.
    /// </summary>
    private static readonly HashSet<string> FirstSynonymWithoutDefault = new(StringComparer.Ordinal) { RetentionMs, "segment.ms", "segment.jitter.ms", "flush.ms" };

    /// <summary>
    /// The default synonym DescribeConfigs reports for <paramref name="topicConfig"/>, as Kafka's: none for the configs whose
    /// first broker synonym has no default, unless a cluster default (<paramref name="firstSynonymSet"/>: a contract's
    /// retention) sets it.
    /// </summary>
    public static bool TryGetReportedDefaultSynonym(string topicConfig, bool firstSynonymSet, out (string Name, string Default) synonym)
    {
        synonym = default;
        return (firstSynonymSet || !FirstSynonymWithoutDefault.Contains(topicConfig)) && TryGetDefaultSynonym(topicConfig, out synonym);
    }

    /// <summary>The broker config Kafka reports as the default's synonym for <paramref name="topicConfig"/>, if it has one, with the default in its unit.</summary>
    public static bool TryGetDefaultSynonym(string topicConfig, out (string Name, string Default) synonym)
    {
        synonym = default;
        if (!DefaultSynonyms.TryGetValue(topicConfig, out string? broker))
        {
            return false;
        }

        // Kafka's default for retention and rolling lives in the hours config; the topic config is in milliseconds.
        string value = Defaults[topicConfig];
        synonym = (broker, broker.EndsWith(".hours", StringComparison.Ordinal)
            ? (long.Parse(value, CultureInfo.InvariantCulture) / 3_600_000).ToString(CultureInfo.InvariantCulture)
            : value);
        return true;
    }

    /// <summary>Kafka's defaults for the configs SharedLog applies or reports.</summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = BuildDefaults();

    private static Dictionary<string, string> BuildDefaults()
    {
        var defaults = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [RetentionMs] = "604800000",
            [RetentionBytes] = "-1",
            [CleanupPolicy] = "delete",
            [MaxMessageBytes] = "1048588",
            [MessageTimestampType] = "CreateTime",
            [CompressionType] = "producer",
            [MinInsyncReplicas] = "1",
            [SegmentBytes] = "1073741824",
        };
        foreach ((string name, (string value, _, _)) in AcceptedWithoutEffect)
        {
            defaults[name] = value;
        }

        return defaults;
    }

    /// <summary>Whether a config is a comma-separated list, which IncrementalAlterConfigs may append to and subtract from.</summary>
    public static bool IsList(string name) => name is CleanupPolicy or "leader.replication.throttled.replicas" or "follower.replication.throttled.replicas";

    /// <summary>
    /// A value as Kafka's ConfigDef parses it, and so stores and describes it (<c>convertToString</c>): trimmed, a boolean
    /// in lower case (Kafka takes "True" and " gzip", as Python's <c>str(True)</c> sends the one), a list's items joined
    /// by commas without spaces ("compact, delete" is "compact,delete"), an integer without sign or leading zeros.
    /// </summary>
    public static string Normalized(string name, string value)
    {
        string trimmed = value.Trim();
        if (Defaults.TryGetValue(name, out string? defaultValue) && defaultValue is "true" or "false"
            && (trimmed.Equals("true", StringComparison.OrdinalIgnoreCase) || trimmed.Equals("false", StringComparison.OrdinalIgnoreCase)))
        {
            return trimmed.ToLowerInvariant();
        }

        if (IsList(name))
        {
            return trimmed.Length == 0 ? trimmed : string.Join(',', trimmed.Split(',', StringSplitOptions.TrimEntries));
        }

        return TypeOf(name) is 3 or 5 && long.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out long number)
            ? number.ToString(CultureInfo.InvariantCulture)
            : trimmed;
    }

    /// <summary>Every value of <paramref name="configs"/> <see cref="Normalized(string, string)"/>: as a topic stores them.</summary>
    public static Dictionary<string, string> Normalized(IReadOnlyDictionary<string, string> configs) =>
        configs.ToDictionary(kv => kv.Key, kv => Normalized(kv.Key, kv.Value), StringComparer.Ordinal);

    /// <summary>Null when the value is acceptable (once <see cref="Normalized(string, string)"/>), else the reason it is not.</summary>
    public static string? Validate(string name, string? value)
    {
        if (!Defaults.ContainsKey(name))
        {
            return $"Unknown topic config '{name}'.";
        }

        if (value is null)
        {
            return null;
        }

        value = Normalized(name, value);
        if (AcceptedWithoutEffect.TryGetValue(name, out (string Default, double? Min, double Max) kind))
        {
            return ValidateWithoutEffect(name, value, kind.Default, kind.Min, kind.Max);
        }

        return name switch
        {
            // The ranges Kafka's LogConfig takes: retention.bytes has no bound (any negative means none), max.message.bytes may be 0.
            RetentionMs => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long ms) && ms >= -1 ? null : $"{name} must be an integer >= -1.",
            RetentionBytes => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _) ? null : $"{name} must be an integer.",
            MaxMessageBytes => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int bytes) && bytes >= 0 ? null : $"{name} must be an integer >= 0.",
            MinInsyncReplicas or SegmentBytes => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 1 ? null : $"{name} must be a positive integer.",
            CleanupPolicy => IsCleanupPolicy(value) ? null : "cleanup.policy must be delete, compact or both.",
            MessageTimestampType => value is "CreateTime" or "LogAppendTime" ? null : "message.timestamp.type must be CreateTime or LogAppendTime.",
            CompressionType => value is "producer" or "uncompressed" or "gzip" or "snappy" or "lz4" or "zstd" ? null : "compression.type is not a known codec.",
            _ => null,
        };
    }

    private static string? ValidateWithoutEffect(string name, string value, string defaultValue, double? min, double max)
    {
        if (defaultValue is "true" or "false")
        {
            return value is "true" or "false" ? null : $"{name} must be true or false.";
        }

        if (name == MessageFormatVersion)
        {
            return MetadataVersionPattern().IsMatch(value) ? null : $"{name} must be a Kafka version such as 3.0-IV1 or 2.8, not '{value}'.";
        }

        if (min is null)
        {
            return null; // free text: the throttled-replica lists
        }

        if (name == "compression.gzip.level" && value == "0")
        {
            return $"{name} must be -1 (the codec's default) or from 1 to 9."; // as Kafka's GZIP level validator: 0 is no level
        }

        // min.cleanable.dirty.ratio is Kafka's one fractional topic config; the others are integers.
        bool parsed;
        double number;
        if (name == "min.cleanable.dirty.ratio")
        {
            parsed = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out number);
        }
        else
        {
            parsed = long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long integer);
            number = integer;
        }

        return parsed && number >= min && number <= max
            ? null
            : $"{name} must be a number from {min.Value.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}.";
    }

    /// <summary>
    /// Null when valid configs (each already validated) agree with each other, else why not, as Kafka's LogConfig checks
    /// them: min.compaction.lag.ms may not exceed max.compaction.lag.ms (defaults fill what is not set).
    /// </summary>
    public static string? ConflictProblem(IReadOnlyDictionary<string, string> configs)
    {
        long minLag = long.Parse(Effective(configs, "min.compaction.lag.ms"), CultureInfo.InvariantCulture);
        long maxLag = long.Parse(Effective(configs, "max.compaction.lag.ms"), CultureInfo.InvariantCulture);
        return minLag > maxLag
            ? $"conflict topic config setting min.compaction.lag.ms ({minLag.ToString(CultureInfo.InvariantCulture)}) > max.compaction.lag.ms ({maxLag.ToString(CultureInfo.InvariantCulture)})"
            : null;
    }

    /// <summary>A list, as Kafka parses it: comma separated, spaces around items ignored, each delete or compact.</summary>
    private static bool IsCleanupPolicy(string value)
    {
        string[] parts = value.Split(',', StringSplitOptions.TrimEntries);
        foreach (string part in parts)
        {
            if (part is not ("delete" or "compact"))
            {
                return false;
            }
        }

        return parts.Length > 0;
    }

    /// <summary>Kafka's type of a config as DescribeConfigs v3+ reports it: 1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list.</summary>
    public static sbyte TypeOf(string name)
    {
        if (AcceptedWithoutEffect.TryGetValue(name, out (string Default, double? Min, double Max) kind))
        {
            return kind switch
            {
                { Default: "true" or "false" } => 1,
                _ when name == MessageFormatVersion => 2,
                { Min: null } => 7, // the throttled-replica lists
                _ when name == "min.cleanable.dirty.ratio" => 6,
                { Max: <= int.MaxValue } => 3,
                _ => 5,
            };
        }

        return name switch
        {
            RetentionMs or RetentionBytes => 5,
            MaxMessageBytes or MinInsyncReplicas or SegmentBytes => 3,
            CleanupPolicy => 7,
            _ => 2,
        };
    }

    /// <summary>
    /// How a produce treats timestamps on a topic: stamped with the broker's time (<c>message.timestamp.type=LogAppendTime</c>),
    /// or CreateTime records kept within <c>message.timestamp.before.max.ms</c> / <c>after.max.ms</c> of it (each
    /// falling back to the deprecated <c>message.timestamp.difference.max.ms</c> while unset, as Kafka's LogConfig does).
    /// </summary>
    public static ProduceTimestamps TimestampsOf(IReadOnlyDictionary<string, string> topicConfigs)
    {
        if (topicConfigs.Count == 0)
        {
            return ProduceTimestamps.Default;
        }

        long Long(string name) => long.Parse(Effective(topicConfigs, name), CultureInfo.InvariantCulture);
        long difference = Long("message.timestamp.difference.max.ms");
        long before = Long("message.timestamp.before.max.ms");
        long after = Long("message.timestamp.after.max.ms");
        return new ProduceTimestamps(
            Effective(topicConfigs, MessageTimestampType) == "LogAppendTime",
            before == long.MaxValue ? difference : before,
            after == long.MaxValue ? difference : after);
    }

    public static string Effective(IReadOnlyDictionary<string, string> topicConfigs, string name) =>
        topicConfigs.TryGetValue(name, out string? value) ? value : Defaults[name];

    /// <summary>Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".</summary>
    public static bool IsValidTopicName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 249 || name is "." or "..")
        {
            return false;
        }

        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>A topic's timestamp handling on produce (<see cref="TopicConfigs.TimestampsOf"/>).</summary>
public readonly record struct ProduceTimestamps(bool LogAppendTime, long BeforeMaxMs, long AfterMaxMs)
{
    public static ProduceTimestamps Default { get; } = new(false, long.MaxValue, long.MaxValue);

    /// <summary>Whether CreateTime records must be checked against the broker's clock.</summary>
    public bool BoundsCreateTime => !LogAppendTime && (BeforeMaxMs != long.MaxValue || AfterMaxMs != long.MaxValue);
}

/// <summary>The retention a topic's data contract gives it, where the topic sets none: null where no contract speaks.</summary>
public readonly record struct ContractRetention(long? Ms, long? Bytes)
{
    /// <summary>What the contracts in force give <paramref name="topic"/>.</summary>
    public static ContractRetention Of(SharedLog.Contracts.Model.ContractStore contracts, string topic) =>
        new(contracts.RetentionMsFor(topic), contracts.RetentionBytesFor(topic));
}
