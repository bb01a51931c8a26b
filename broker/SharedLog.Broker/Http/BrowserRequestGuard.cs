using SharedLog.Contracts;

namespace SharedLog.Broker.Http;

/// <summary>
/// Refuses requests that change state when a web browser sent them. The admin and registry ports have no
/// authentication, and a page the operator visits may POST to a broker on the operator's own machine without the
/// browser asking first (a "simple" cross-origin request): it could roll back or delete a contract, or register a
/// schema. Browsers mark such requests with an <c>Origin</c> header; command-line tools, the contracts CLI and the
/// registry clients of Kafka serializers do not send one. Reads stay open (the browser keeps their answers from the
/// page).
/// </summary>
public static partial class BrowserRequestGuard
{
    public static void Use(WebApplication app)
    {
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(BrowserRequestGuard));
        app.Use(async (context, next) =>
        {
            // Answers (JSON, with names and messages unescaped: ReadableJson) are never to be sniffed as HTML by a browser.
            context.Response.Headers.XContentTypeOptions = "nosniff";
            string method = context.Request.Method;
            bool changesState = !(HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method));
            if (changesState && context.Request.Headers.Origin.Count > 0)
            {
                LogRefused(logger, method, context.Request.Path, context.Request.Headers.Origin.ToString());
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                context.Response.ContentType = "application/json";
                var error = new System.Text.Json.Nodes.JsonObject
                {
                    ["error_code"] = 40301,
                    ["message"] = "Requests from a web page (with an Origin header) may not change the broker's state; use a Kafka tool, a registry client or the contracts CLI.",
                };
                await context.Response.WriteAsync(error.ToJsonString(ReadableJson.Options), context.RequestAborted);
                return;
            }

            await next(context);
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused {Method} {Path} sent by a web page from {Origin}: the HTTP ports take state changes only from non-browser clients")]
    private static partial void LogRefused(ILogger logger, string method, PathString path, string origin);
}
