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
}

/// <summary>What a handler knows about the request besides its body.</summary>
public sealed record RequestContext(RequestHeader Header, short Version, string ConnectionId, System.Net.EndPoint? RemoteEndPoint);

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
