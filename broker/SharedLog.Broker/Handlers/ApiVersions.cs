// ApiVersions, versions 0-4. Lists every API this broker has a handler for, with the versions that
// handler serves. A request at a version the broker does not know is answered at v0 with
// UNSUPPORTED_VERSION and the list (KIP-511), so old and new clients can negotiate; the response
// header is always v0 (KIP-482/511). v3+ carries the client's software name and version.
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class ApiVersionsHandler(Func<HandlerRegistry> registry) : IApiHandler
{
    public ApiKey Api => ApiKey.ApiVersions;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.ApiVersions);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IApiMessage?>(BuildResponse(ErrorCode.None));

    /// <summary>The supported-API list, also used for the v0 fallback answer.</summary>
    public ApiVersionsResponse BuildResponse(ErrorCode error)
    {
        var response = new ApiVersionsResponse { ErrorCode = (short)error };
        foreach (IApiHandler handler in registry().All.OrderBy(h => h.Api))
        {
            response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion
            {
                ApiKey = (short)handler.Api,
                MinVersion = handler.MinVersion,
                MaxVersion = handler.MaxVersion,
            });
        }

        return response;
    }
}
