// AlterConfigs (versions 0-2) and IncrementalAlterConfigs (versions 0-1, KIP-339) for topics.
// AlterConfigs replaces the topic's whole set of overrides; IncrementalAlterConfigs sets (0), deletes
// (1) or, for list configs, appends (2) / subtracts (3) values. As Kafka, a resource named twice, a config
// named twice or a null value to set get INVALID_REQUEST; unknown configs and bad values get
// INVALID_CONFIG and change nothing; broker resources are accepted with no effect (no dynamic broker
// configs yet). Broker loggers (type 8) take IncrementalAlterConfigs SET and DELETE of log levels, as Kafka's
// (BrokerLogLevels); other resource types get INVALID_REQUEST.
using System.Globalization;
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class AlterConfigsHandler(TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.AlterConfigs;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.AlterConfigs);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (AlterConfigsRequest)request;
        var response = new AlterConfigsResponse();
        HashSet<(sbyte, string)> repeated = RequestEntries.Repeated(body.Resources.Select(r => (r.ResourceType, r.ResourceName)));
        foreach (AlterConfigsRequest.AlterConfigsResource resource in body.Resources)
        {
            (ErrorCode error, string? message) = repeated.Contains((resource.ResourceType, resource.ResourceName)) ? (ErrorCode.InvalidRequest, ConfigResources.RepeatedMessage)
                : ConfigResources.EntriesProblem([.. resource.Configs.Select(c => (c.Name, c.Value, false))]) is { } malformed ? (ErrorCode.InvalidRequest, malformed)
                : await ConfigResources.ApplyAsync(topics, resource.ResourceType, resource.ResourceName, body.ValidateOnly, topic =>
            {
                // Replace semantics: every current override not named is removed.
                var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (string existing in topic?.Configs.Keys ?? [])
                {
                    changes[existing] = null;
                }

                foreach (AlterConfigsRequest.AlterableConfig config in resource.Configs)
                {
                    changes[config.Name] = config.Value;
                }

                return (changes, null);
            }, cancellationToken);
            response.Responses.Add(new AlterConfigsResponse.AlterConfigsResourceResponse { ResourceType = resource.ResourceType, ResourceName = resource.ResourceName, ErrorCode = (short)error, ErrorMessage = message });
        }

        return response;
    }
}

public sealed class IncrementalAlterConfigsHandler(TopicService topics, BrokerLogLevels logLevels, IOptions<BrokerOptions> options) : IApiHandler
{
    private const sbyte Set = 0;
    private const sbyte Delete = 1;
    private const sbyte Append = 2;
    private const sbyte Subtract = 3;

    public ApiKey Api => ApiKey.IncrementalAlterConfigs;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.IncrementalAlterConfigs);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (IncrementalAlterConfigsRequest)request;
        var response = new IncrementalAlterConfigsResponse();
        HashSet<(sbyte, string)> repeated = RequestEntries.Repeated(body.Resources.Select(r => (r.ResourceType, r.ResourceName)));
        foreach (IncrementalAlterConfigsRequest.AlterConfigsResource resource in body.Resources)
        {
            (ErrorCode error, string? message) = repeated.Contains((resource.ResourceType, resource.ResourceName)) ? (ErrorCode.InvalidRequest, ConfigResources.RepeatedMessage)
                : ConfigResources.EntriesProblem([.. resource.Configs.Select(c => (c.Name, c.Value, c.ConfigOperation == Delete))]) is { } malformed ? (ErrorCode.InvalidRequest, malformed)
                : resource.ResourceType == ConfigResources.BrokerLogger ? AlterLoggers(resource, body.ValidateOnly)
                : await ConfigResources.ApplyAsync(topics, resource.ResourceType, resource.ResourceName, body.ValidateOnly, topic => Changes(topic, resource.Configs), cancellationToken);
            response.Responses.Add(new IncrementalAlterConfigsResponse.AlterConfigsResourceResponse { ResourceType = resource.ResourceType, ResourceName = resource.ResourceName, ErrorCode = (short)error, ErrorMessage = message });
        }

        return response;
    }

    /// <summary>Sets or removes log levels, all or none, with Kafka's errors: APPEND and SUBTRACT are INVALID_REQUEST, as is removing root's level.</summary>
    private (ErrorCode Error, string? Message) AlterLoggers(IncrementalAlterConfigsRequest.AlterConfigsResource resource, bool validateOnly)
    {
        if (ConfigResources.OtherBrokerProblem(resource.ResourceName, options.Value.NodeId) is { } otherBroker)
        {
            return (ErrorCode.InvalidRequest, otherBroker);
        }

        var changes = new List<(string Logger, string? Level)>(resource.Configs.Count);
        foreach (IncrementalAlterConfigsRequest.AlterableConfig config in resource.Configs)
        {
            if (config.ConfigOperation is not (Set or Delete))
            {
                return (ErrorCode.InvalidRequest, $"Operation {config.ConfigOperation} is not supported for broker loggers; use SET (0) or DELETE (1).");
            }

            bool remove = config.ConfigOperation == Delete;
            if (logLevels.Problem(config.Name, config.Value, remove) is { } problem)
            {
                return (remove && config.Name == BrokerLogLevels.Root ? ErrorCode.InvalidRequest : ErrorCode.InvalidConfig, problem);
            }

            changes.Add((config.Name, remove ? null : config.Value));
        }

        if (!validateOnly)
        {
            logLevels.Apply(changes);
        }

        return (ErrorCode.None, null);
    }

    private static (Dictionary<string, string?> Changes, string? Problem) Changes(TopicMetadata? topic, List<IncrementalAlterConfigsRequest.AlterableConfig> configs)
    {
        var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (IncrementalAlterConfigsRequest.AlterableConfig config in configs)
        {
            string current = topic is not null && TopicConfigs.Defaults.ContainsKey(config.Name) ? TopicConfigs.Effective(topic.Configs, config.Name) : string.Empty;
            switch (config.ConfigOperation)
            {
                case Set:
                    changes[config.Name] = config.Value;
                    break;
                case Delete when TopicConfigs.Defaults.ContainsKey(config.Name):
                    changes[config.Name] = null;
                    break;
                case Delete:
                    break; // as Kafka: removing an override that cannot exist changes nothing and is no error
                case Append or Subtract when TopicConfigs.IsList(config.Name):
                    // Sets beside the ordered list: a client's value may hold millions of entries.
                    var values = current.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
                    string[] given = (config.Value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (config.ConfigOperation == Append)
                    {
                        var present = new HashSet<string>(values, StringComparer.Ordinal);
                        values.AddRange(given.Where(present.Add));
                    }
                    else
                    {
                        // One occurrence per value named, the first ones, as repeated List.Remove would.
                        var toRemove = new Dictionary<string, int>(StringComparer.Ordinal);
                        foreach (string v in given)
                        {
                            toRemove[v] = toRemove.GetValueOrDefault(v) + 1;
                        }

                        values.RemoveAll(v => toRemove.TryGetValue(v, out int left) && left > 0 && (toRemove[v] = left - 1) >= 0);
                    }

                    changes[config.Name] = string.Join(',', values);
                    break;
                default:
                    return (changes, $"Operation {config.ConfigOperation} is not valid for {config.Name}.");
            }
        }

        return (changes, null);

    }
}

/// <summary>Config resource types (Kafka's ConfigResource.Type) the config APIs accept.</summary>
internal static class ConfigResources
{
    public const sbyte Topic = 2;
    public const sbyte Broker = 4;
    public const sbyte BrokerLogger = 8;

    public const string RepeatedMessage = "Each resource must appear at most once.";

    /// <summary>As Kafka: a broker (or broker logger) resource names this broker's id; clients send it to that broker. Null when it does.</summary>
    public static string? OtherBrokerProblem(string resourceName, int nodeId) =>
        int.TryParse(resourceName, NumberStyles.None, CultureInfo.InvariantCulture, out int brokerId) && brokerId == nodeId ? null
            : $"Unexpected broker id, expected {nodeId} but received '{resourceName}'.";

    /// <summary>
    /// What Kafka refuses in a resource's entries before looking at the resource (INVALID_REQUEST): a config named twice,
    /// or a null value for anything but a deletion. Null when there is neither.
    /// </summary>
    public static string? EntriesProblem(IReadOnlyList<(string Name, string? Value, bool IsDelete)> entries)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        List<string>? nulls = null;
        foreach ((string name, string? value, bool isDelete) in entries)
        {
            if (!names.Add(name))
            {
                return "Error due to duplicate config keys";
            }

            if (value is null && !isDelete)
            {
                (nulls ??= []).Add(name);
            }
        }

        return nulls is null ? null : "Null value not supported for : " + string.Join(", ", nulls);
    }

    /// <summary>Validates the resource type and applies the changes <paramref name="plan"/> derives from the topic (null for a broker).</summary>
    public static async Task<(ErrorCode Error, string? Message)> ApplyAsync(
        TopicService topics, sbyte type, string name, bool validateOnly,
        Func<TopicMetadata?, (Dictionary<string, string?> Changes, string? Problem)> plan, CancellationToken cancellationToken)
    {
        if (type is not (Topic or Broker))
        {
            return (ErrorCode.InvalidRequest, $"Resource type {type} is not supported.");
        }

        if (type == Broker)
        {
            // Broker settings come from appsettings, the environment and the command line; answering success for a
            // change that is not made would mislead kafka-configs and UIs.
            return plan(null).Changes.Count == 0 ? (ErrorCode.None, null)
                : (ErrorCode.InvalidRequest, "Broker configs cannot be changed at runtime; set them in appsettings.json, SHAREDLOG_ environment variables or on the command line (docs/configuration.md).");
        }

        if (SharedLog.Contracts.InternalTopics.IsInternal(name) && topics.Find(name) is { } journal && DropsJournalRecords(journal, plan(journal).Changes))
        {
            return (ErrorCode.PolicyViolation, $"Topic {name} is internal to the broker and keeps its records for good: its {string.Join(", ", KeepingConfigs)} cannot be changed.");
        }

        return await topics.AlterConfigsAsync(name, plan, validateOnly, cancellationToken);
    }

    /// <summary>The configs that keep the registry's and contract store's journals whole (replayed at every start).</summary>
    private static readonly string[] KeepingConfigs = ["cleanup.policy", "retention.ms", "retention.bytes"];

    private static bool DropsJournalRecords(TopicMetadata journal, Dictionary<string, string?> changes)
    {
        foreach (string config in KeepingConfigs)
        {
            if (changes.TryGetValue(config, out string? value) && value != journal.Configs.GetValueOrDefault(config))
            {
                return true;
            }
        }

        return false;
    }
}
