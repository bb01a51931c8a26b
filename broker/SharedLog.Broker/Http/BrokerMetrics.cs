using System.Diagnostics.Metrics;
using SharedLog.Protocol;
using SharedLog.Storage;

namespace SharedLog.Broker.Http;

/// <summary>
/// The broker's OpenTelemetry instruments, exported in Prometheus text format on the HTTP port at
/// <c>/metrics</c>: requests by API, request latency by API, error codes (top-level and inside responses), and bytes in and
/// out by topic. Storage instruments (WAL commit latency, upload lag) live in the storage engine's meter.
/// </summary>
public sealed class BrokerMetrics : IDisposable
{
    public const string MeterName = "SharedLog.Broker";

    /// <summary>
    /// Series a metric labelled by topic or consumer group may have; OpenTelemetry's default of 2,000 is reached by 32
    /// groups on a 64-partition topic, after which new series merge into one <c>otel_metric_overflow</c> series. Each
    /// series slot is allocated up front, so the limit stays bounded (a few MB in all).
    /// </summary>
    public const int MaxSeriesPerTopicOrGroupMetric = 20_000;

    /// <summary>The instruments labelled by topic (and partition) or consumer group, given <see cref="MaxSeriesPerTopicOrGroupMetric"/>.</summary>
    public static readonly IReadOnlySet<string> PerTopicOrGroup = new HashSet<string>(StringComparer.Ordinal)
    {
        "sharedlog.consumer.group.lag", "sharedlog.bytes.in", "sharedlog.bytes.out",
        "sharedlog.contract.records", "sharedlog.contract.violations", "sharedlog.contract.schema.records",
        "sharedlog.contract.gate.duration", "sharedlog.contract.quarantine.backlog", "sharedlog.contract.quarantine.oldest.age",
    };

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _requestLatency;
    private readonly Counter<long> _partitionErrors;
    private readonly Counter<long> _responseErrors;
    private readonly Counter<long> _bytesIn;
    private readonly Counter<long> _bytesOut;
    private readonly Counter<long> _connectionsClosed;

    /// <summary>Publishes consumer group lag (records behind the high watermark) per group, topic and partition.</summary>
    public void ObserveGroupLag(Func<IEnumerable<Measurement<long>>> lags) =>
        _meter.CreateObservableGauge("sharedlog.consumer.group.lag", lags, description: "Records between a group's committed offset and the partition's high watermark");

    public BrokerMetrics()
    {
        _requests = _meter.CreateCounter<long>("sharedlog.requests", description: "Kafka requests served, by API");
        _requestLatency = _meter.CreateHistogram("sharedlog.request.duration", unit: "ms", description: "Time from the broker taking a request's frame to writing its response, by API", tags: null, advice: StorageMetrics.LatencyBuckets);
        _partitionErrors = _meter.CreateCounter<long>("sharedlog.partition.errors", description: "Error codes returned inside responses (per partition, topic, group or member; None not counted), by API and error");
        _responseErrors = _meter.CreateCounter<long>("sharedlog.response.errors", description: "Responses by API and their top-level error code (None included), for APIs whose responses carry one");
        _bytesIn = _meter.CreateCounter<long>("sharedlog.bytes.in", unit: "By", description: "Record bytes appended, by topic");
        _bytesOut = _meter.CreateCounter<long>("sharedlog.bytes.out", unit: "By", description: "Record bytes fetched, by topic");
        _connectionsClosed = _meter.CreateCounter<long>("sharedlog.connections.closed", description: "Connections the broker closed, by reason");
    }

    public void Request(ApiKey api, double milliseconds)
    {
        var tag = new KeyValuePair<string, object?>("api", api.ToString());
        _requests.Add(1, tag);
        _requestLatency.Record(milliseconds, tag);
    }

    /// <summary>
    /// Counts a response's top-level error code, None included, when its message has one, and the error codes inside it
    /// (see <see cref="ResponseErrors"/>), except Produce's and Fetch's, which their handlers count.
    /// </summary>
    public void Response(ApiKey api, SharedLog.Protocol.Messages.IApiMessage response, short version)
    {
        if (ResponseErrors.TopLevel(response, version) is { } error)
        {
            _responseErrors.Add(1, new KeyValuePair<string, object?>("api", api.ToString()), new KeyValuePair<string, object?>("error", ((ErrorCode)error).ToString()));
        }

        if (api is not ApiKey.Produce and not ApiKey.Fetch)
        {
            ResponseErrors.VisitNested(response, version, this, api);
        }
    }

    public void PartitionError(ApiKey api, ErrorCode error)
    {
        if (error != ErrorCode.None)
        {
            _partitionErrors.Add(1, new KeyValuePair<string, object?>("api", api.ToString()), new KeyValuePair<string, object?>("error", error.ToString()));
        }
    }

    public void BytesIn(string topic, long bytes) => _bytesIn.Add(bytes, new KeyValuePair<string, object?>("topic", topic));

    public void BytesOut(string topic, long bytes) => _bytesOut.Add(bytes, new KeyValuePair<string, object?>("topic", topic));

    public void ConnectionClosed(string reason) => _connectionsClosed.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void Dispose() => _meter.Dispose();
}

/// <summary>
/// The error codes of a response: its top-level <c>ErrorCode</c>, and that of each nested struct (topic, partition, group,
/// member...), found through the generated message's properties (the messages share no interface for them) with getters
/// compiled once per type. A plan keeps only the properties under which some struct has an error code, so a response's
/// other lists (configs, brokers, members) are not walked. Only fields the response's version carries are read (see
/// <see cref="SharedLog.Protocol.Messages.FieldVersionsAttribute"/>): a field the client never sees keeps its default, and
/// counting it would report None for a response whose errors sit elsewhere at that version.
/// </summary>
internal static class ResponseErrors
{
    /// <summary>Deeper than any Kafka message nests its structs; a bound, not a limit a real response reaches.</summary>
    private const int MaxDepth = 8;

    /// <summary>A child property: its getter, the versions that carry it (null: every one), and the plan of the struct type it holds (one, or a list of them).</summary>
    private sealed record Child(Func<object, object?> Read, SharedLog.Protocol.Messages.FieldVersionsAttribute? Carried, Plan Element);

    private sealed record Plan(Func<object, short>? ErrorCode, SharedLog.Protocol.Messages.FieldVersionsAttribute? ErrorCodeCarried, Child[] Children)
    {
        public bool HasErrors => ErrorCode is not null || Children.Length > 0;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, Plan> Plans = new();

    private static readonly Plan Empty = new(null, null, []);

    private static bool Carries(SharedLog.Protocol.Messages.FieldVersionsAttribute? carried, short version) => carried?.Contains(version) ?? true;

    private static SharedLog.Protocol.Messages.FieldVersionsAttribute? VersionsOf(System.Reflection.PropertyInfo property) =>
        (SharedLog.Protocol.Messages.FieldVersionsAttribute?)Attribute.GetCustomAttribute(property, typeof(SharedLog.Protocol.Messages.FieldVersionsAttribute), inherit: false);

    /// <summary>
    /// The response's top-level error code; null for messages without one at <paramref name="version"/> (their errors are
    /// per partition, group or coordinator).
    /// </summary>
    public static short? TopLevel(SharedLog.Protocol.Messages.IApiMessage response, short version) =>
        PlanOf(response.GetType(), 0) is { ErrorCode: { } errorCode } plan && Carries(plan.ErrorCodeCarried, version) ? errorCode(response) : null;

    /// <summary>Counts the error codes below the response's top level.</summary>
    public static void VisitNested(SharedLog.Protocol.Messages.IApiMessage response, short version, BrokerMetrics metrics, ApiKey api) =>
        VisitChildren(PlanOf(response.GetType(), 0), response, version, metrics, api);

    /// <summary>Walks what the plan leads to; plans are finite trees (see <see cref="PlanOf"/>), so the walk is bounded too.</summary>
    private static void VisitChildren(Plan plan, object node, short version, BrokerMetrics metrics, ApiKey api)
    {
        foreach (Child child in plan.Children)
        {
            if (!Carries(child.Carried, version))
            {
                continue;
            }

            switch (child.Read(node))
            {
                case System.Collections.IList items:
                    // An index loop: a foreach over the non-generic list would box an enumerator per list.
                    for (int i = 0; i < items.Count; i++)
                    {
                        if (items[i] is { } item)
                        {
                            VisitStruct(child.Element, item, version, metrics, api);
                        }
                    }

                    break;
                case { } single:
                    VisitStruct(child.Element, single, version, metrics, api);
                    break;
            }
        }
    }

    private static void VisitStruct(Plan plan, object node, short version, BrokerMetrics metrics, ApiKey api)
    {
        if (plan.ErrorCode is { } errorCode && Carries(plan.ErrorCodeCarried, version))
        {
            metrics.PartitionError(api, (ErrorCode)errorCode(node));
        }

        VisitChildren(plan, node, version, metrics, api);
    }

    /// <summary>
    /// The plan of a generated message or struct type (they are sealed, so a property's declared type is the type it holds);
    /// <paramref name="depth"/> only bounds the recursion.
    /// </summary>
    private static Plan PlanOf(Type type, int depth) =>
        depth >= MaxDepth ? Empty : Plans.GetOrAdd(type, static (t, level) => Compile(t, level), depth);

    private static Plan Compile(Type type, int depth)
    {
        var node = System.Linq.Expressions.Expression.Parameter(typeof(object), "node");
        System.Linq.Expressions.Expression Read(System.Reflection.PropertyInfo property) =>
            System.Linq.Expressions.Expression.Property(System.Linq.Expressions.Expression.Convert(node, type), property);

        System.Reflection.PropertyInfo? code = type.GetProperty("ErrorCode", typeof(short)) is { CanRead: true } found ? found : null;
        Func<object, short>? errorCode = code is not null
            ? System.Linq.Expressions.Expression.Lambda<Func<object, short>>(Read(code), node).Compile()
            : null;
        var children = new List<Child>();
        foreach (System.Reflection.PropertyInfo property in type.GetProperties())
        {
            Type element = property.PropertyType.IsGenericType && property.PropertyType.GetGenericTypeDefinition() == typeof(List<>)
                ? property.PropertyType.GetGenericArguments()[0]
                : property.PropertyType;
            if (!property.CanRead || property.GetIndexParameters().Length > 0 || !typeof(SharedLog.Protocol.Messages.IKafkaStruct).IsAssignableFrom(element))
            {
                continue;
            }

            Plan elementPlan = PlanOf(element, depth + 1);
            if (elementPlan.HasErrors)
            {
                children.Add(new Child(System.Linq.Expressions.Expression.Lambda<Func<object, object?>>(System.Linq.Expressions.Expression.Convert(Read(property), typeof(object)), node).Compile(), VersionsOf(property), elementPlan));
            }
        }

        return new Plan(errorCode, code is null ? null : VersionsOf(code), [.. children]);
    }
}
