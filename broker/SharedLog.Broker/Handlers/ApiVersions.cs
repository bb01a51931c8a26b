// ApiVersions, versions 0-4. Lists every API this broker has a handler for, with the versions that
// handler serves. A request at a version the broker does not know is answered at v0 with
// UNSUPPORTED_VERSION and the list (KIP-511), so old and new clients can negotiate; the response
// header is always v0 (KIP-482/511). v3+ carries the client's software name and version, which must
// match Kafka's pattern (letters, digits, '-' and '.', starting and ending with a letter or digit), else
// INVALID_REQUEST with no API list, as Kafka answers.
using System.Text.RegularExpressions;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed partial class ApiVersionsHandler(Func<HandlerRegistry> registry) : IApiHandler
{
    public ApiKey Api => ApiKey.ApiVersions;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.ApiVersions);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (ApiVersionsRequest)request;
        bool valid = context.Version < 3 || (SoftwareField().IsMatch(body.ClientSoftwareName) && SoftwareField().IsMatch(body.ClientSoftwareVersion));
        return ValueTask.FromResult<IApiMessage?>(valid ? BuildResponse(ErrorCode.None) : new ApiVersionsResponse { ErrorCode = (short)ErrorCode.InvalidRequest });
    }

    /// <summary>Kafka's pattern for client_software_name and client_software_version (KIP-511).</summary>
    [GeneratedRegex("^[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?\\z", RegexOptions.CultureInvariant)]
    private static partial Regex SoftwareField();

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
