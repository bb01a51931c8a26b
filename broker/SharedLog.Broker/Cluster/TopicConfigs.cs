using System.Globalization;

namespace SharedLog.Broker.Cluster;

/// <summary>Topic configs SharedLog knows, with Kafka's names and defaults, and their validation.</summary>
public static class TopicConfigs
{
    public const string RetentionMs = "retention.ms";
    public const string RetentionBytes = "retention.bytes";
    public const string CleanupPolicy = "cleanup.policy";
    public const string MaxMessageBytes = "max.message.bytes";
    public const string MessageTimestampType = "message.timestamp.type";
    public const string CompressionType = "compression.type";
    public const string MinInsyncReplicas = "min.insync.replicas";
    public const string SegmentBytes = "segment.bytes";

    /// <summary>Kafka's defaults for the configs SharedLog applies or reports.</summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
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

    /// <summary>Null when the value is acceptable, else the reason it is not.</summary>
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

        return name switch
        {
            RetentionMs or RetentionBytes => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) && l >= -1 ? null : $"{name} must be an integer >= -1.",
            MaxMessageBytes or MinInsyncReplicas or SegmentBytes => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 1 ? null : $"{name} must be a positive integer.",
            CleanupPolicy => IsCleanupPolicy(value) ? null : "cleanup.policy must be delete, compact or both.",
            MessageTimestampType => value is "CreateTime" or "LogAppendTime" ? null : "message.timestamp.type must be CreateTime or LogAppendTime.",
            CompressionType => value is "producer" or "uncompressed" or "gzip" or "snappy" or "lz4" or "zstd" ? null : "compression.type is not a known codec.",
            _ => null,
        };
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
