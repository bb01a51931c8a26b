using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

/// <summary>
/// Serves one Kafka API. Registering a handler is what puts its API into the ApiVersions response, with
/// the versions the handler declares (never more than the spec defines).
/// </summary>
public interface IApiHandler
{
    ApiKey Api { get; }

    short MinVersion { get; }

    short MaxVersion { get; }

    /// <summary>Answers a decoded request; null means no response is sent (Produce with acks=0).</summary>
    ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken);

    /// <summary>
    /// Whether answering this request reads its bytes for long enough (CPU work per record) that the
    /// connection should hand it a copy and read on, rather than hold the client's next request back. A produce
    /// given a copy may also start before the produce ahead of it is ordered (see <see cref="RequestContext.Preceding"/>).
    /// </summary>
    bool ReadsRequestBytesLong(IApiMessage request) => false;
}

/// <summary>What a handler knows about the request besides its body.</summary>
public sealed record RequestContext(RequestHeader Header, short Version, string ConnectionId, System.Net.EndPoint? RemoteEndPoint)
{
    /// <summary>
    /// Set for requests the connection may overlap with the next one (Produce): the handler calls
    /// <see cref="OrderingPoint.Reached"/> once everything whose order matters is done (offsets assigned,
    /// WAL entries queued), and the connection starts the next request while this one waits for durability.
    /// </summary>
    public OrderingPoint? Ordering { get; init; }

    /// <summary>
    /// For a produce: completes once the connection's produce before it reached its ordering point (or ended). The
    /// handler may check its records before, but waits for it before anything whose order matters.
    /// </summary>
    public Task Preceding { get; init; } = Task.CompletedTask;

    /// <summary>Set only by the broker's own quarantine replay, never for a request from a connection.</summary>
    public bool FromReplay { get; init; }

    /// <summary>
    /// Set only by the quarantine replay: counts the records of its produce that the target's contract quarantined (stored
    /// in the target's quarantine topic, gaps in the target), which its answer cannot tell.
    /// </summary>
    public System.Runtime.CompilerServices.StrongBox<long>? QuarantinedByTarget { get; init; }
}

/// <summary>Completes when a pipelined request no longer needs to run before the next one.</summary>
public sealed class OrderingPoint
{
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Task => _reached.Task;

    public void Reached() => _reached.TrySetResult();
}

/// <summary>The registered handlers, by API key.</summary>
public sealed class HandlerRegistry
{
    private readonly Dictionary<ApiKey, IApiHandler> _handlers = [];

    public HandlerRegistry(IEnumerable<IApiHandler> handlers)
    {
        foreach (IApiHandler handler in handlers)
        {
            if (handler.MinVersion < ApiMessages.LowestVersion(handler.Api) || handler.MaxVersion > ApiMessages.HighestVersion(handler.Api) || handler.MinVersion > handler.MaxVersion)
            {
                throw new InvalidOperationException($"{handler.Api} handler declares versions {handler.MinVersion}-{handler.MaxVersion} outside the spec.");
            }

            _handlers.Add(handler.Api, handler);
        }
    }

    public IReadOnlyCollection<IApiHandler> All => _handlers.Values;

    public bool TryGet(ApiKey api, out IApiHandler handler) => _handlers.TryGetValue(api, out handler!);
}
