using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharedLog.Broker.Cluster;
using SharedLog.Contracts;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;

namespace SharedLog.Broker.Http;

/// <summary>
/// Contracts over HTTP on the admin port: list, show (with history), apply (a contract file as YAML or
/// JSON; <c>dryRun=true</c> only diffs), roll back to a version, delete. The actor recorded in the
/// history and the audit topic is the <c>X-SharedLog-Actor</c> header. Errors are
/// <c>{"error_code", "message", "problems"}</c>; bodies are at most 256 KiB.
/// </summary>
public static partial class ContractsApi
{
    public const string ActorHeader = "X-SharedLog-Actor";

    public static void Map(IEndpointRouteBuilder routes)
    {
        // Who made a change is one name: with the header twice, keeping either would record a name the caller may not have meant.
        RouteGroupBuilder app = routes.MapGroup(string.Empty);
        // It goes into the audit topic and log lines as given, so control characters (a forged line) are refused too.
        app.AddEndpointFilter(async (invocation, next) =>
            HttpMethods.IsGet(invocation.HttpContext.Request.Method) ? await next(invocation)
            : invocation.HttpContext.Request.Headers[ActorHeader] is { Count: > 1 } actors ? Error(400, $"Send one {ActorHeader} header, not {actors.Count}.")
            : invocation.HttpContext.Request.Headers[ActorHeader].FirstOrDefault() is { } actor && actor.Any(SharedLog.Contracts.Model.ContractParser.IsUnprintable) ? Error(400, $"{ActorHeader} must not hold control characters or line breaks.")
            : invocation.HttpContext.Request.Headers[ActorHeader].FirstOrDefault() is { } undecodable && undecodable.Contains('\uFFFD', StringComparison.Ordinal) ? Error(400, $"{ActorHeader} must be UTF-8 text (it held bytes that are not, or U+FFFD).")
            : await next(invocation));
        app.MapGet("/contracts", (ContractStore store) => Json(new JsonArray([.. store.CurrentContracts.Select(c => (JsonNode?)Summary(c.Revision, c.Contract.Definition))])));
        app.MapGet("/contracts/{name}", (string name, ContractStore store) =>
        {
            IReadOnlyList<ContractRevision> history = store.History(name);
            if (history.Count == 0)
            {
                return Error(404, $"Contract '{name}' not found.");
            }

            JsonObject current = Revision(history[^1]);
            current["history"] = new JsonArray([.. history.Select(r => (JsonNode?)new JsonObject { ["version"] = r.Version, ["action"] = r.Action, ["actor"] = r.Actor, ["at"] = r.At.ToString("O"), ["fromVersion"] = r.FromVersion })]);
            return Json(current);
        });
        // The version is read here, not by a route constraint, so that "versions/x" is answered in the API's error form.
        app.MapGet("/contracts/{name}/versions/{version}", (string name, string version, ContractStore store) =>
            !int.TryParse(version, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int number) ? Error(400, $"A contract version is a number, not '{version}'.")
            : store.History(name).FirstOrDefault(r => r.Version == number) is { } revision ? Json(Revision(revision)) : Error(404, $"Contract '{name}' has no version {number}."));
        app.MapGet("/contracts/{name}/versions", (string name, ContractStore store) =>
            store.History(name) is { Count: > 0 } history
                ? Json(new JsonArray([.. history.Select(r => (JsonNode?)r.Version)]))
                : Error(404, $"Contract '{name}' not found."));
        app.MapPost("/contracts", async (HttpContext context, ContractStore store, SchemaRegistry registry) =>
        {
            (string? text, IResult? refused) = await ReadBodyAsync(context, ContractParser.MaxDocumentChars, "A contract file");
            if (text is null)
            {
                return refused!;
            }

            if (DryRunOf(context) is not { } dryRun)
            {
                return DryRunRefusal(context);
            }

            var warnings = new List<string>();
            return await ChangeAndSyncAsync(
                link => store.ApplyAsync(text, Actor(context), dryRun, d => ProblemsOf(d, registry, warnings), context.RequestAborted, link),
                registry,
                warnings);
        });

        // The version rolled back to may bind other subjects or another compatibility level: synced as an apply is.
        app.MapPost("/contracts/{name}/rollback", async (string name, string? version, HttpContext context, ContractStore store, SchemaRegistry registry) =>
        {
            var warnings = new List<string>();
            return DryRunOf(context) is not { } dryRun ? DryRunRefusal(context)
                : !int.TryParse(version, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int wanted)
                    ? Error(400, "A rollback needs ?version=N, the version to go back to.")
                    : await ChangeAndSyncAsync(
                    link => store.RollbackAsync(name, wanted, Actor(context), d => ProblemsOf(d, registry, warnings), context.RequestAborted, link, dryRun),
                    registry,
                    warnings);
        });
        app.MapDelete("/contracts/{name}", async (string name, HttpContext context, ContractStore store, SchemaRegistry registry) =>
            DryRunOf(context) is not { } dryRun ? DryRunRefusal(context)
            : await ChangeAndSyncAsync(link => store.DeleteAsync(name, Actor(context), context.RequestAborted, link, dryRun), registry));
        app.MapPost("/replays", async (HttpContext context, QuarantineReplay replay, IHostApplicationLifetime lifetime) =>
        {
            (string? text, IResult? refused) = await ReadBodyAsync(context, MaxReplayRequestBytes, "A replay request");
            if (text is null)
            {
                return refused!;
            }

            ReplayRequest request;
            try
            {
                request = ReplayRequests.Parse(text, Actor(context));
            }
            catch (ReplayRequestException e)
            {
                return Error(e.Status, e.Message);
            }
            catch (Exception e) when (SharedLog.Contracts.Formats.Json.InvalidJsonText.Is(e))
            {
                return Error(400, $"The replay request is not valid JSON text: {e.Message}");
            }

            try
            {
                // Not cancelled when the client goes away: a replay that started finishes, and is logged and audited.
                ReplayReport report = await replay.RunAsync(request, lifetime.ApplicationStopping);
                // A replay stopped by a failed write has still written what it reports, and says where to resume.
                return Results.Text(JsonSerializer.Serialize(report, ReplayRequests.JsonOptions), "application/json", Encoding.UTF8, report.Error is null ? 200 : 503);
            }
            catch (ReplayRequestException e)
            {
                return Error(e.Status, e.Message);
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
            {
                return Error(503, "The broker is stopping, and the replay stopped: a named one goes on from its progress when run again; an unnamed one may have written some of its records.");
            }
        });
    }

    /// <summary>
    /// The admin port's answer to a request no endpoint took (an unknown path, or a method the path does not serve, whose
    /// Allow header routing has set): the API's error form and a log line, instead of an empty 404 or 405.
    /// </summary>
    public static Task AnswerUnroutedAsync(Microsoft.AspNetCore.Diagnostics.StatusCodeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        HttpContext http = context.HttpContext;
        int status = http.Response.StatusCode;
        string message = status switch
        {
            405 => $"{http.Request.Method} is not served at {http.Request.Path}; it serves {http.Response.Headers.Allow}.",
            404 => $"No admin API endpoint at {http.Request.Path}: see docs/contracts.md for the contracts API (/contracts, /replays), and /health and /metrics.",
            _ => $"HTTP {status}.",
        };
        return Error(status, message).ExecuteAsync(http);
    }

    /// <summary>A replay request is a small JSON object; this bounds what is read of one.</summary>
    private const int MaxReplayRequestBytes = 64 * 1024;

    /// <summary>
    /// Why a contract cannot take effect: its rules and policy do not compile, a rule reads or a privacy path names no
    /// field of the schemas registered for it, or a subject whose compatibility level it sets is read-only. An apply and a rollback are
    /// checked alike: a version rolled back to may name a field that a schema registered since does not have, and would
    /// leave the field it meant unmasked.
    /// </summary>
    private static IReadOnlyList<string> ProblemsOf(ContractDefinition definition, SchemaRegistry registry, List<string> warnings)
    {
        warnings.Clear();
        warnings.AddRange(WarningsOf(definition, registry));
        Func<SchemaRequirement, bool, IReadOnlyList<IParsedSchema>?> registered = (r, isKey) => ContractRegistrySync.RegisteredSchemas(registry, definition, r, isKey);
        return [.. ContractGate.CompileProblems(definition), .. SchemaFieldPaths.RuleFieldProblems(definition, registered), .. SchemaFieldPaths.PrivacyPathProblems(definition, registered), .. ContractRegistrySync.Problems(definition, registry)];
    }

    /// <summary>The subject's live versions; none when it has none (also when deleted between the two reads).</summary>
    private static IReadOnlyList<int> LiveVersions(SchemaRegistry registry, string subject)
    {
        try
        {
            return registry.Subjects(includeDeleted: false, subject).Contains(subject) ? registry.Versions(subject, includeDeleted: false) : [];
        }
        catch (SchemaRegistryException)
        {
            return [];
        }
    }

    /// <summary>
    /// <see cref="ContractRegistrySync.UnservedSide"/> for each side of <paramref name="definition"/> whose subject it names, against the
    /// broker's registry.
    /// </summary>
    private static List<string> WarningsOf(ContractDefinition definition, SchemaRegistry registry)
    {
        var warnings = new List<string>();
        foreach ((SchemaRequirement? requirement, bool isKey) in new[] { (definition.Key, true), (definition.Value, false) })
        {
            if (requirement is not null && ContractRegistrySync.NamedSubject(definition, requirement, isKey) is { } subject
                && ContractRegistrySync.UnservedSide(definition, isKey, subject, LiveVersions(registry, subject), requirement) is { } warning)
            {
                warnings.Add(warning);
            }
        }

        return warnings;
    }

    /// <summary>
    /// A change, then the registry's compatibility levels: subjects the contract no longer binds get the level they had
    /// before it back, and the subjects of the contract it left in force (none after a dry run or a delete) get its level;
    /// under the store's writer, so concurrent changes set them in the order they were made; the answer lists the levels changed.
    /// The levels are set even if the client has gone: the change they follow is stored by then.
    /// </summary>
    private static Task<IResult> ChangeAndSyncAsync(Func<RegistryLink, Task<ContractChange>> change, SchemaRegistry registry, List<string>? warnings = null)
    {
        var registryChanges = new List<string>();
        var link = new RegistryLink(
            subject => ContractRegistrySync.SubjectLevel(registry, subject),
            registry.IsWritable,
            async released => registryChanges.AddRange(await ContractRegistrySync.ReleaseAsync(released, registry, CancellationToken.None)),
            async inForce => registryChanges.AddRange(await ContractRegistrySync.ApplyAsync(inForce, registry, CancellationToken.None)));
        return ChangeAsync(() => change(link), () => registryChanges, warnings);
    }

    /// <summary>
    /// A change's <c>dryRun</c>: false when not given, null when it is not plainly true or false (read as false, a dryRun=1
    /// or yes would change the contract the caller meant only to try; a delete's was once ignored, and deleted it).
    /// </summary>
    private static bool? DryRunOf(HttpContext context)
    {
        Microsoft.Extensions.Primitives.StringValues dryRunText = context.Request.Query["dryRun"];
        return dryRunText.Count == 0 ? false : dryRunText.Count == 1 ? TrueOrFalse(dryRunText[0]) : null;
    }

    private static Refusal DryRunRefusal(HttpContext context)
    {
        string given = context.Request.Query["dryRun"].ToString();
        return Error(400, $"dryRun is true or false, not {JsonSerializer.Serialize(given[..Math.Min(given.Length, 64)])}.");
    }

    private static async Task<IResult> ChangeAsync(Func<Task<ContractChange>> change, Func<IReadOnlyList<string>>? registryChanges = null, List<string>? warnings = null)
    {
        try
        {
            ContractChange result = await change();
            var body = new JsonObject
            {
                ["name"] = result.Name,
                ["version"] = result.Version,
                ["changed"] = result.Changed,
                ["diff"] = new JsonArray([.. result.Diff.Select(d => (JsonNode?)d)]),
            };
            if ((result.RegistryPreview ?? registryChanges?.Invoke()) is { } levels)
            {
                body["registry"] = new JsonArray([.. levels.Select(r => (JsonNode?)r)]);
            }

            if (warnings is { Count: > 0 })
            {
                body["warnings"] = new JsonArray([.. warnings.Select(w => (JsonNode?)w)]);
            }

            return Json(body);
        }
        catch (ContractRegistrySyncException e)
        {
            // The registry's own refusal keeps its status; anything else (its journal failed, it is shutting down) is the
            // broker's fault, named by type since its message alone may not say what failed.
            return e.InnerException is SchemaRegistryException refused
                ? Error(refused.HttpStatus, e.Message)
                : Error(500, $"{e.Message} ({e.InnerException!.GetType().Name}); apply the same contract again to set them.");
        }
        catch (SchemaRegistryException e)
        {
            // Before anything was stored: the registry could not answer the checks (a stored schema it cannot parse).
            return Error(e.HttpStatus, $"The contract was not stored: the registry failed while it was checked: {e.Message}");
        }
        catch (ContractValidationException e)
        {
            return Error(422, e.Message, e.Problems);
        }
        catch (KeyNotFoundException e)
        {
            return Error(404, e.Message);
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The body as text, or the refusal: reads at most the size limit plus one byte, so a body without Content-Length
    /// (chunked) cannot grow past it either (413), and takes only valid UTF-8 (400), since a replaced byte would change
    /// what a rule compares without anyone seeing it.
    /// </summary>
    private static async Task<(string? Text, IResult? Refused)> ReadBodyAsync(HttpContext context, int maxBytes, string what)
    {
        // A compressed body would read as bytes that are not UTF-8: say what is wrong with it (as an HTTP server that
        // decodes no content codings answers).
        if (context.Request.Headers.ContentEncoding is { Count: > 0 } encoding && !string.Equals(encoding.ToString(), "identity", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Error(415, $"{what} is read as sent: Content-Encoding {encoding} is not supported; send it uncompressed."));
        }

        // A declared length over the limit is refused unread (Kestrel would throw reading a body past its own 30 MB limit).
        if (context.Request.ContentLength > maxBytes)
        {
            return (null, Error(413, $"{what} is at most {maxBytes} bytes."));
        }

        // A declared length is all Kestrel lets through; one byte more tells a chunked body past the limit.
        byte[] buffer = new byte[Math.Min(context.Request.ContentLength ?? maxBytes, maxBytes) + 1];
        int total = 0;
        int read;
        try
        {
            while (total < buffer.Length && (read = await context.Request.Body.ReadAsync(buffer.AsMemory(total), context.RequestAborted)) > 0)
            {
                total += read;
            }
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
        {
            return (null, Error(e.StatusCode, $"{what} could not be read: {e.Message}"));
        }

        if (total > maxBytes)
        {
            return (null, Error(413, $"{what} is at most {maxBytes} bytes."));
        }

        // A byte order mark is how some editors start a UTF-8 file (and File.ReadAllText, which the CLI uses, drops it).
        int start = buffer.AsSpan(0, total).StartsWith("\uFEFF"u8) ? 3 : 0;
        try
        {
            return (StrictUtf8.GetString(buffer, start, total - start), null);
        }
        catch (DecoderFallbackException e)
        {
            return (null, Error(400, $"{what} must be UTF-8: {e.Message}"));
        }
    }

    /// <summary>Longest <see cref="ActorHeader"/> kept whole; a longer one is cut there and marked, not replaced.</summary>
    public const int MaxActorChars = 256;

    private static string Actor(HttpContext context) =>
        context.Request.Headers[ActorHeader].FirstOrDefault() switch
        {
            { Length: 0 } or null => "anonymous",
            { Length: <= MaxActorChars } actor => actor,
            string actor => string.Concat(actor.AsSpan(0, char.IsHighSurrogate(actor[MaxActorChars - 2]) ? MaxActorChars - 2 : MaxActorChars - 1), "…"),
        };

    private static JsonObject Summary(ContractRevision revision, ContractDefinition definition) => new()
    {
        ["name"] = revision.Name,
        ["version"] = revision.Version,
        ["topic"] = definition.Topic,
        ["class"] = definition.ClassName,
        ["owner"] = definition.Owner,
        ["onFailure"] = definition.OnFailure.ToString().ToLowerInvariant(),
        ["appliedBy"] = revision.Actor,
        ["appliedAt"] = revision.At.ToString("O"),
    };

    private static JsonObject Revision(ContractRevision revision) => new()
    {
        ["name"] = revision.Name,
        ["version"] = revision.Version,
        ["action"] = revision.Action,
        ["actor"] = revision.Actor,
        ["at"] = revision.At.ToString("O"),
        ["text"] = revision.Text,
    };

    private static IResult Json(JsonNode node) => Results.Text(node.ToJsonString(ReadableJson.Options), "application/json", Encoding.UTF8);

    /// <summary>Exactly true or false, in any case, else null: bool.TryParse would also take " true" and "true\0".</summary>
    private static bool? TrueOrFalse(string? text) =>
        string.Equals(text, "true", StringComparison.OrdinalIgnoreCase) ? true : string.Equals(text, "false", StringComparison.OrdinalIgnoreCase) ? false : null;

    private static Refusal Error(int status, string message, IReadOnlyList<string>? problems = null)
    {
        var error = new JsonObject { ["error_code"] = status, ["message"] = message };
        if (problems is not null)
        {
            error["problems"] = new JsonArray([.. problems.Select(p => (JsonNode?)p)]);
        }

        return new Refusal(status, message, Results.Text(error.ToJsonString(ReadableJson.Options), "application/json", Encoding.UTF8, status));
    }

    /// <summary>An error answer that logs itself when sent: every refusal of the contracts API leaves a line, as the registry's do.</summary>
    private sealed class Refusal(int status, string message, IResult answer) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            ILogger logger = httpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ContractsApi).FullName!);
            // A 404 is a lookup of a name that is not there: not worth a line per request on an open port.
            LogRefused(logger, status >= 500 ? LogLevel.Warning : status == 404 ? LogLevel.Debug : LogLevel.Information, httpContext.Request.Method, httpContext.Request.Path, status, message);
            return answer.ExecuteAsync(httpContext);
        }
    }

    [LoggerMessage(Message = "Contracts API refused {Method} {Path}: {Status} {Reason}")]
    private static partial void LogRefused(ILogger logger, LogLevel level, string method, PathString path, int status, string reason);
}
