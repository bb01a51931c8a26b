// DescribeConfigs, versions 0-4. Topics (resource type 2) report every config SharedLog knows, with
// Kafka's names: values set on the topic have source TOPIC_CONFIG (1), a retention.ms the topic's data contract gives
// (its class default or its own) DYNAMIC_DEFAULT_BROKER_CONFIG (3), the rest DEFAULT_CONFIG (5).
// Broker loggers (type 8) report every logger category with the level it logs at (BrokerLogLevels), changed with
// IncrementalAlterConfigs. Brokers (type 4) report their settings and the broker-level defaults of topic configs (BrokerConfigs), all
// read-only; an empty broker name asks for cluster-wide dynamic defaults, of which there are none. v1+ may ask for synonyms (the default is the only synonym of
// an unset config, under Kafka's broker config name, e.g. log.retention.hours for retention.ms), v3+ for
// documentation (none is given) and the config's type.
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Contracts.Model;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class DescribeConfigsHandler(TopicService topics, IOptions<BrokerOptions> options, AdvertisedListener listener, ContractStore contracts, BrokerLogLevels logLevels, ILoggerFactory loggerFactory) : IApiHandler
{

    public ApiKey Api => ApiKey.DescribeConfigs;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DescribeConfigs);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DescribeConfigsRequest)request;
        var response = new DescribeConfigsResponse();
        foreach (DescribeConfigsRequest.DescribeConfigsResource resource in body.Resources)
        {
            var result = new DescribeConfigsResponse.DescribeConfigsResult { ResourceType = resource.ResourceType, ResourceName = resource.ResourceName };
            response.Results.Add(result);
            // As Kafka: no keys, null or an empty list, means every config. A set, since a client may name millions.
            HashSet<string>? keys = resource.ConfigurationKeys is { Count: > 0 } named ? new HashSet<string>(named, StringComparer.Ordinal) : null;
            if (resource.ResourceType == ConfigResources.Broker)
            {
                DescribeBroker(resource, keys, body.IncludeSynonyms, result);
                continue;
            }

            if (resource.ResourceType == ConfigResources.BrokerLogger)
            {
                DescribeLoggers(resource, keys, result);
                continue;
            }

            if (resource.ResourceType != ConfigResources.Topic)
            {
                result.ErrorCode = (short)ErrorCode.InvalidRequest;
                result.ErrorMessage = $"Resource type {resource.ResourceType} is not supported.";
                continue;
            }

            if (!TopicConfigs.IsValidTopicName(resource.ResourceName))
            {
                // As Kafka's ConfigHelper, which validates the name before looking the topic up.
                result.ErrorCode = (short)ErrorCode.InvalidTopicException;
                result.ErrorMessage = $"'{resource.ResourceName}' is not a valid topic name.";
                continue;
            }

            TopicMetadata? topic = topics.Find(resource.ResourceName);
            if (topic is null)
            {
                result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                result.ErrorMessage = $"Topic '{resource.ResourceName}' does not exist.";
                continue;
            }

            var contractRetention = ContractRetention.Of(contracts, topic.Name);
            foreach ((string name, string defaultValue) in TopicConfigs.Defaults.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (keys is not null && !keys.Contains(name))
                {
                    continue;
                }

                (string value, sbyte source) = TopicConfigs.Effective(name, topic.Configs, defaultValue, contractRetention);
                var entry = new DescribeConfigsResponse.DescribeConfigsResourceResult
                {
                    Name = name,
                    Value = value,
                    IsDefault = source == BrokerConfigs.DefaultConfigSource,
                    ConfigSource = source,
                    ConfigType = TopicConfigs.TypeOf(name),
                };
                if (body.IncludeSynonyms)
                {
                    if (source == TopicConfigs.TopicConfigSource)
                    {
                        entry.Synonyms.Add(new DescribeConfigsResponse.DescribeConfigsSynonym { Name = name, Value = value, Source = source });
                    }

                    long? given = TopicConfigs.ContractValue(name, contractRetention);
                    if (given is not null)
                    {
                        // As Kafka names a cluster-wide dynamic default: by the broker config it sets.
                        entry.Synonyms.Add(new DescribeConfigsResponse.DescribeConfigsSynonym { Name = "log." + name, Value = given.Value.ToString(CultureInfo.InvariantCulture), Source = TopicConfigs.ContractDefaultSource });
                    }

                    if (TopicConfigs.TryGetReportedDefaultSynonym(name, firstSynonymSet: given is not null, out (string Name, string Default) broker))
                    {
                        entry.Synonyms.Add(new DescribeConfigsResponse.DescribeConfigsSynonym { Name = broker.Name, Value = broker.Default, Source = BrokerConfigs.DefaultConfigSource });
                    }
                }

                result.Configs.Add(entry);
            }
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }

    /// <summary>As Kafka's broker loggers: every logger with the level it logs at, changeable (IncrementalAlterConfigs), no synonyms.</summary>
    private void DescribeLoggers(DescribeConfigsRequest.DescribeConfigsResource resource, HashSet<string>? keys, DescribeConfigsResponse.DescribeConfigsResult result)
    {
        if (ConfigResources.OtherBrokerProblem(resource.ResourceName, options.Value.NodeId) is { } otherBroker)
        {
            result.ErrorCode = (short)ErrorCode.InvalidRequest;
            result.ErrorMessage = otherBroker;
            return;
        }

        foreach (string logger in logLevels.Loggers())
        {
            if (keys is not null && !keys.Contains(logger))
            {
                continue;
            }

            result.Configs.Add(new DescribeConfigsResponse.DescribeConfigsResourceResult
            {
                Name = logger,
                Value = BrokerLogLevels.EffectiveLevel(loggerFactory, logger),
                ConfigSource = BrokerLogLevels.LoggerConfigSource,
                ConfigType = BrokerConfigs.StringType,
            });
        }
    }

    private void DescribeBroker(DescribeConfigsRequest.DescribeConfigsResource resource, HashSet<string>? keys, bool includeSynonyms, DescribeConfigsResponse.DescribeConfigsResult result)
    {
        if (resource.ResourceName.Length == 0)
        {
            return;
        }

        if (ConfigResources.OtherBrokerProblem(resource.ResourceName, options.Value.NodeId) is { } otherBroker)
        {
            result.ErrorCode = (short)ErrorCode.InvalidRequest;
            result.ErrorMessage = otherBroker;
            return;
        }

        foreach (BrokerConfigs.Entry config in BrokerConfigs.Describe(options.Value, listener))
        {
            if (keys is not null && !keys.Contains(config.Name))
            {
                continue;
            }

            var entry = new DescribeConfigsResponse.DescribeConfigsResourceResult
            {
                Name = config.Name,
                Value = config.Value,
                ReadOnly = true,
                IsDefault = config.IsDefault,
                ConfigSource = config.Source,
                ConfigType = config.Type,
            };
            if (includeSynonyms)
            {
                entry.Synonyms.Add(new DescribeConfigsResponse.DescribeConfigsSynonym { Name = config.Name, Value = config.Value, Source = config.Source });
                if (!config.IsDefault)
                {
                    entry.Synonyms.Add(new DescribeConfigsResponse.DescribeConfigsSynonym { Name = config.Name, Value = config.Default, Source = BrokerConfigs.DefaultConfigSource });
                }
            }

            result.Configs.Add(entry);
        }
    }
}
