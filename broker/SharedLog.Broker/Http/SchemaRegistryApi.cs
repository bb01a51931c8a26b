using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;
using SharedLog.Contracts;
using SharedLog.Contracts.Registry;

namespace SharedLog.Broker.Http;

/// <summary>
/// Confluent's Schema Registry REST API, served on the registry port. Requests are dispatched on
/// their raw path segments (so subjects may hold an encoded '/'); bodies are JSON of at most
/// <see cref="MaxBodyBytes"/>; every error is <c>{"error_code": int, "message": str}</c> with
/// Confluent's codes. The registry itself (state, storage, compatibility) lives in contracts/.
/// </summary>
public sealed partial class SchemaRegistryApi(SchemaRegistry registry, SharedLog.Contracts.Model.ContractStore contracts, ILogger<SchemaRegistryApi> logger)
{
    public const string ContentType = "application/vnd.schemaregistry.v1+json";
    public const long MaxBodyBytes = 16 * 1024 * 1024;

    private static readonly string[] AcceptedContentTypes =
        ["application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json", "application/octet-stream"];

    private static readonly JsonSerializerOptions BodyJson = new(JsonSerializerDefaults.Web)
    {
        MaxDepth = 64,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private sealed class SchemaBody
    {
        public string? Schema { get; set; }

        public string? SchemaType { get; set; }

        public List<SchemaReference>? References { get; set; }

        public SchemaMetadata? Metadata { get; set; }

        public JsonObject? RuleSet { get; set; }

        public int? Id { get; set; }

        public int? Version { get; set; }
    }

    private sealed class ConfigBody
    {
        public string? Compatibility { get; set; }

        public string? CompatibilityLevel { get; set; }
    }

    private sealed class ModeBody
    {
        public string? Mode { get; set; }
    }

    /// <summary>
    /// Parsing a schema and comparing it with a subject's versions can take far more memory than its text (a 900 KB
    /// Avro schema, forty such checks at once: +0.7 GB), so at most one such request per core runs; the others wait
    /// their turn (or until their client goes away) instead of all building their trees at once.
    /// </summary>
    private static readonly SemaphoreSlim SchemaWorkSlots = new(Math.Max(Environment.ProcessorCount, 1));

    /// <summary>Terminal middleware for the registry port.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        try
        {
            await DispatchAsync(context, Segments(context));
        }
        catch (SchemaRegistryException e)
        {
            LogRefused(context.Request.Method, context.Request.Path, e.ErrorCode, e.Message);
            await ErrorAsync(context, e.HttpStatus, e.ErrorCode, e.Message);
        }
        catch (BadHttpRequestException e)
        {
            LogRefused(context.Request.Method, context.Request.Path, e.StatusCode, e.Message);
            await ErrorAsync(context, e.StatusCode, e.StatusCode, e.Message);
        }
        catch (Exception e) when (e is JsonException || SharedLog.Contracts.Formats.Json.InvalidJsonText.Is(e))
        {
            LogRefused(context.Request.Method, context.Request.Path, 400, e.Message);
            await ErrorAsync(context, 400, 400, $"Malformed JSON body: {e.Message}");
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception e)
        {
            LogFailed(e, context.Request.Method, context.Request.Path);
            // As Confluent's generic error: 50001 is for a failed store write only, which the registry reports itself.
            await ErrorAsync(context, 500, 500, "Internal error in the schema registry.");
        }
    }

    private async Task DispatchAsync(HttpContext context, string[] path)
    {
        // As Jersey, HEAD is served wherever GET is, with the same status and headers; Kestrel drops the body.
        string method = HttpMethods.IsHead(context.Request.Method) ? "GET" : context.Request.Method;
        IQueryCollection query = context.Request.Query;
        CancellationToken cancel = context.RequestAborted;
        bool deleted = Flag(query, "deleted");
        switch (path)
        {
            case [] when method == "GET":
                await JsonAsync(context, new JsonObject());
                return;
            case ["schemas", "types"] when method == "GET":
                await JsonAsync(context, Array(registry.SupportedTypes.OrderBy(t => t).Select(t => (JsonNode?)RegistryNames.Name(t))));
                return;
            case ["schemas"] when method == "GET":
                await JsonAsync(context, Array(registry.List(query["subjectPrefix"], deleted, Flag(query, "latestOnly")).Select(s => (JsonNode?)Describe(s))));
                return;
            case ["schemas", "ids", string id] when method == "GET":
                await JsonAsync(context, InFormat(Describe(registry.GetById(SchemaId(id))), SchemaId(id), query["format"]));
                return;
            case ["schemas", "ids", string id, "schema"] when method == "GET":
                await RawSchemaAsync(context, registry.GetById(SchemaId(id)).Schema);
                return;
            case ["schemas", "ids", string id, "subjects"] when method == "GET":
                await JsonAsync(context, Array(registry.UsagesOf(SchemaId(id), deleted).Select(u => u.Subject).Distinct().Select(s => (JsonNode?)s)));
                return;
            case ["schemas", "ids", string id, "versions"] when method == "GET":
                await JsonAsync(context, Array(registry.UsagesOf(SchemaId(id), deleted).Select(u => (JsonNode?)new JsonObject { ["subject"] = u.Subject, ["version"] = u.Version })));
                return;
            case ["subjects"] when method == "GET":
                await JsonAsync(context, Array(Page(registry.Subjects(deleted, query["subjectPrefix"], Flag(query, "deletedOnly")), query).Select(s => (JsonNode?)s)));
                return;
            case ["subjects", string subject] when method == "POST":
                SchemaRequest looked = await SchemaRequestAsync(context);
                await registry.WhenIndexedAsync(cancel); // outside the work slot: waiting after a start must not hold one
                await JsonAsync(context, Describe(await InSchemaWorkSlotAsync(() => registry.LookupAsync(subject, looked, deleted, cancel), cancel)));
                return;
            case ["subjects", string subject] when method == "DELETE":
                IReadOnlyList<int> deletedVersions = await registry.DeleteSubjectAsync(subject, Flag(query, "permanent"), cancel);
                await RestoreContractLevelAsync(subject);
                await JsonAsync(context, Array(deletedVersions.Select(v => (JsonNode?)v)));
                return;
            case ["subjects", string subject, "versions"] when method == "GET":
                await JsonAsync(context, Array(Page(registry.Versions(subject, deleted, Flag(query, "deletedOnly")), query).Select(v => (JsonNode?)v)));
                return;
            case ["subjects", string subject, "versions"] when method == "POST":
                SchemaRequest registering = await SchemaRequestAsync(context, mayOmitSchema: true);
                await registry.WhenIndexedAsync(cancel);
                RegisteredSchema registered = await InSchemaWorkSlotAsync(() => registry.RegisterAsync(subject, registering, cancel), cancel);
                await JsonAsync(context, new JsonObject { ["id"] = registered.Id, ["version"] = registered.Version });
                return;
            case ["subjects", string subject, "versions", string version] when method == "GET":
                RegisteredSchema found = registry.GetVersion(subject, version, deleted);
                await JsonAsync(context, InFormat(Describe(found), found.Id, query["format"]));
                return;
            case ["subjects", string subject, "versions", string version] when method == "DELETE":
                int deletedVersion = await registry.DeleteVersionAsync(subject, version, Flag(query, "permanent"), cancel);
                await RestoreContractLevelAsync(subject);
                await JsonAsync(context, JsonValue.Create(deletedVersion));
                return;
            case ["subjects", string subject, "versions", string version, "schema"] when method == "GET":
                await RawSchemaAsync(context, registry.GetVersion(subject, version, deleted).Schema);
                return;
            case ["subjects", string subject, "metadata"] when method == "GET":
                await JsonAsync(context, Describe(registry.LatestWithMetadata(subject, MetadataQuery(query), deleted)));
                return;
            case ["subjects", string subject, "versions", string version, "referencedby"] when method == "GET":
                await JsonAsync(context, Array(registry.ReferencedBy(subject, version).Select(id => (JsonNode?)id)));
                return;
            case ["compatibility", "subjects", string subject, "versions", .. string[] rest] when method == "POST" && rest.Length <= 1:
                SchemaRequest checkedSchema = await SchemaRequestAsync(context);
                CompatibilityResult result;
                try
                {
                    result = await InSchemaWorkSlotAsync(() => registry.CheckCompatibility(subject, rest.Length == 1 ? rest[0] : null, checkedSchema), cancel);
                }
                catch (SchemaRegistryException e) when (e.ErrorCode == RegistryErrorCodes.InvalidSchema && Flag(query, "verbose"))
                {
                    // As Confluent: asked for details, a schema that does not parse is an incompatible one, with the reason.
                    result = new CompatibilityResult(false, [e.Message]);
                }

                var answer = new JsonObject { ["is_compatible"] = result.IsCompatible };
                if (Flag(query, "verbose"))
                {
                    answer["messages"] = Array(result.Messages.Select(m => (JsonNode?)m));
                }

                await JsonAsync(context, answer);
                return;
            case ["config", .. string[] rest] when rest.Length <= 1:
                await ConfigAsync(context, method, rest.Length == 1 ? rest[0] : null);
                return;
            case ["mode", .. string[] rest] when rest.Length <= 1:
                await ModeAsync(context, method, rest.Length == 1 ? rest[0] : null);
                return;
            case ["contexts"] when method == "GET":
                await JsonAsync(context, new JsonArray("."));
                return;
            case var known when IsRoute(known):
                // As Confluent (Jersey): a path it serves, asked with another method.
                await ErrorAsync(context, 405, 405, "HTTP 405 Method Not Allowed");
                return;
            default:
                await ErrorAsync(context, 404, 404, "HTTP 404 Not Found");
                return;
        }
    }

    /// <summary>Whether some method is served on this path (the routes of <see cref="DispatchAsync"/>, whatever the method).</summary>
    private static bool IsRoute(string[] path) => path switch
    {
        [] or ["schemas"] or ["schemas", "types"] or ["schemas", "ids", _] or ["subjects"] or ["contexts"] => true,
        ["schemas", "ids", _, "schema" or "subjects" or "versions"] => true,
        ["subjects", _] or ["subjects", _, "versions" or "metadata"] or ["subjects", _, "versions", _] => true,
        ["subjects", _, "versions", _, "schema" or "referencedby"] => true,
        ["compatibility", "subjects", _, "versions", ..] => path.Length <= 5,
        _ => false,
    };

    /// <summary>The <c>key</c>/<c>value</c> pairs of a metadata lookup, in order (<c>?key=owner&amp;value=payments&amp;key=...</c>).</summary>
    private static List<(string Key, string Value)> MetadataQuery(IQueryCollection query)
    {
        Microsoft.Extensions.Primitives.StringValues keys = query["key"];
        Microsoft.Extensions.Primitives.StringValues values = query["value"];
        if (keys.Count != values.Count)
        {
            throw new SchemaRegistryException(400, $"Metadata lookup needs one value per key: {keys.Count} keys, {values.Count} values.");
        }

        var pairs = new List<(string Key, string Value)>(keys.Count);
        for (int i = 0; i < keys.Count; i++)
        {
            pairs.Add((keys[i] ?? string.Empty, values[i] ?? string.Empty));
        }

        return pairs;
    }

    private async Task ConfigAsync(HttpContext context, string method, string? subject)
    {
        CancellationToken cancel = context.RequestAborted;
        switch (method)
        {
            case "GET":
                CompatibilityLevel level = subject is null
                    ? registry.GlobalCompatibility
                    : registry.SubjectCompatibility(subject) ?? (Flag(context.Request.Query, "defaultToGlobal")
                        ? registry.GlobalCompatibility
                        : throw new SchemaRegistryException(RegistryErrorCodes.SubjectCompatibilityNotConfigured, $"Subject '{subject}' does not have subject-level compatibility configured."));
                await JsonAsync(context, new JsonObject { ["compatibilityLevel"] = RegistryNames.Name(level) });
                return;
            case "PUT":
                ConfigBody body = await ReadBodyAsync<ConfigBody>(context);
                string? text = body.Compatibility ?? body.CompatibilityLevel;
                if (!RegistryNames.TryParseLevel(text, out CompatibilityLevel wanted))
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.InvalidCompatibilityLevel, $"Invalid compatibility level '{text}'. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE.");
                }

                await BetweenContractChangesAsync(async () =>
                {
                    RefuseLevelOfBoundSubject(subject, wanted);
                    await registry.SetCompatibilityAsync(subject, wanted, cancel);
                });
                await JsonAsync(context, new JsonObject { ["compatibility"] = RegistryNames.Name(wanted) });
                return;
            case "DELETE":
                CompatibilityLevel previous = default;
                await BetweenContractChangesAsync(async () =>
                {
                    RefuseLevelOfBoundSubject(subject, wanted: null);
                    previous = await registry.DeleteCompatibilityAsync(subject, cancel);
                });
                await JsonAsync(context, new JsonObject { ["compatibilityLevel"] = RegistryNames.Name(previous) });
                return;
            default:
                await ErrorAsync(context, 405, 405, "HTTP 405 Method Not Allowed");
                return;
        }
    }

    /// <summary>
    /// Runs a change of a compatibility level or a mode while no contract change is under way. A contract change reads a
    /// subject's level (to give it back later) and checks its mode before it stores anything, then sets the level: a level
    /// or mode changed in between was lost (a PUT answered 200, then given back over by the contract's delete) or made the
    /// stored contract's level change fail (the subject turned read-only after the check).
    /// </summary>
    private async Task BetweenContractChangesAsync(Func<Task> change) => await contracts.BetweenChangesAsync(async () =>
    {
        await change();
        return true;
    });

    /// <summary>
    /// A subject a data contract names has the contract's compatibility level: changing or removing it here would
    /// break the contract's promise about evolution without a new contract version, so only the contract changes it.
    /// </summary>
    private void RefuseLevelOfBoundSubject(string? subject, CompatibilityLevel? wanted)
    {
        if (subject is not null && contracts.ContractBinding(subject) is { } contract && wanted != contract.Compatibility)
        {
            throw new SchemaRegistryException(
                RegistryErrorCodes.OperationNotPermitted,
                $"Subject '{subject}' has the compatibility level {RegistryNames.Name(contract.Compatibility)} set by data contract '{contract.Name}'; change the contract (or delete it) to change the level.");
        }
    }

    /// <summary>
    /// Sets a bound subject's level back to its contract's when it is not that (a subject delete removes the subject's
    /// settings). True when it did.
    /// </summary>
    private async Task<bool> RestoreContractLevelAsync(string subject) => NeedsContractLevel(subject) is not null && await contracts.BetweenChangesAsync(async () =>
    {
        // Checked again between contract changes: one that set or gave back this subject's level between the check and the
        // write would have its level overwritten with the replaced contract's. (Nothing to do needs no such care: a change
        // after the check sets its own levels.)
        if (NeedsContractLevel(subject) is not { } contract)
        {
            return false;
        }

        try
        {
            // Not cancelled with the request: the change it repairs is done whether or not its client waits.
            await registry.SetCompatibilityAsync(subject, contract.Compatibility, CancellationToken.None);
        }
        catch (SchemaRegistryException e)
        {
            // The delete it follows happened (a read-only registry, a journal failure): its answer stands, and the level
            // comes back with the contract's next apply.
            LogLevelNotRestored(e, subject, contract.Compatibility, contract.Name);
            return false;
        }

        LogLevelRestored(subject, contract.Compatibility, contract.Name);
        return true;
    });

    /// <summary>The contract binding <paramref name="subject"/> when the subject's level is not that contract's, else null.</summary>
    private SharedLog.Contracts.Model.ContractDefinition? NeedsContractLevel(string subject) =>
        contracts.ContractBinding(subject) is { } contract && registry.SubjectCompatibility(subject) != contract.Compatibility ? contract : null;

    private async Task ModeAsync(HttpContext context, string method, string? subject)
    {
        CancellationToken cancel = context.RequestAborted;
        switch (method)
        {
            case "GET":
                RegistryMode mode = subject is null
                    ? registry.GlobalMode
                    : registry.SubjectMode(subject) ?? (Flag(context.Request.Query, "defaultToGlobal")
                        ? registry.GlobalMode
                        : throw new SchemaRegistryException(RegistryErrorCodes.SubjectModeNotConfigured, $"Subject '{subject}' does not have subject-level mode configured."));
                await JsonAsync(context, new JsonObject { ["mode"] = RegistryNames.Name(mode) });
                return;
            case "PUT":
                ModeBody body = await ReadBodyAsync<ModeBody>(context);
                if (!RegistryNames.TryParseMode(body.Mode, out RegistryMode wanted))
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.InvalidMode, $"Invalid mode '{body.Mode}'. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, IMPORT.");
                }

                await BetweenContractChangesAsync(() => registry.SetModeAsync(subject, wanted, Flag(context.Request.Query, "force"), cancel));
                await JsonAsync(context, new JsonObject { ["mode"] = RegistryNames.Name(wanted) });
                return;
            case "DELETE":
                RegistryMode previous = default;
                await BetweenContractChangesAsync(async () => previous = await registry.DeleteModeAsync(subject, cancel));
                await JsonAsync(context, new JsonObject { ["mode"] = RegistryNames.Name(previous) });
                return;
            default:
                await ErrorAsync(context, 405, 405, "HTTP 405 Method Not Allowed");
                return;
        }
    }

    /// <summary>
    /// The schema a request body carries. With <paramref name="mayOmitSchema"/> (registration) a body without schema text
    /// is let through: the registry takes the subject's latest schema (new metadata or rules only), as Confluent does.
    /// </summary>
    private static async Task<SchemaRequest> SchemaRequestAsync(HttpContext context, bool mayOmitSchema = false)
    {
        SchemaBody body = await ReadBodyAsync<SchemaBody>(context);
        if (string.IsNullOrWhiteSpace(body.Schema) && !mayOmitSchema)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "Empty schema.");
        }

        if (!RegistryNames.TryParseType(body.SchemaType, out SchemaType type))
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Unknown schema type '{body.SchemaType}'; use AVRO, JSON or PROTOBUF.");
        }

        // JSON null where an object or list belongs is malformed input, answered as such rather than failing later.
        if (body.References?.Contains(null!) == true)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "Invalid schema: a schema reference is null.");
        }

        if (body.Metadata?.Tags?.ContainsValue(null!) == true)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "Invalid schema: metadata tags of a path are null.");
        }

        if (body.RuleSet is not null && RuleSets.Problem(body.RuleSet) is { } ruleProblem)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: {ruleProblem}");
        }

        // As Confluent, an id below 0 is no id (clients send -1 for "not chosen").
        return new SchemaRequest(body.Schema ?? string.Empty, type, body.References ?? [], body.Metadata, body.Id is < 0 ? null : body.Id, body.Version, Flag(context.Request.Query, "normalize"), RuleSets.Canonical(body.RuleSet));
    }

    private static async Task<T> InSchemaWorkSlotAsync<T>(Func<T> work, CancellationToken cancel) =>
        await InSchemaWorkSlotAsync(() => Task.FromResult(work()), cancel);

    private static async Task<T> InSchemaWorkSlotAsync<T>(Func<Task<T>> work, CancellationToken cancel)
    {
        await SchemaWorkSlots.WaitAsync(cancel);
        try
        {
            return await work();
        }
        finally
        {
            SchemaWorkSlots.Release();
        }
    }

    private static async Task<T> ReadBodyAsync<T>(HttpContext context)
        where T : class
    {
        string? contentType = context.Request.ContentType?.Split(';')[0].Trim();
        if (contentType is not null && !AcceptedContentTypes.Contains(contentType, StringComparer.OrdinalIgnoreCase))
        {
            throw new SchemaRegistryException(415, $"Content type '{contentType}' is not supported; use {ContentType}.");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxBodyBytes;
        }

        if (context.Request.ContentLength > MaxBodyBytes)
        {
            throw new SchemaRegistryException(413, $"Request body is larger than {MaxBodyBytes} bytes.");
        }

        if (!await context.RequestServices.GetRequiredService<RequestBodyBudget>().ReserveAsync(context, MaxBodyBytes))
        {
            throw new SchemaRegistryException(429, RequestBodyBudget.BusyMessage);
        }

        return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, BodyJson, context.RequestAborted)
            ?? throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "The request body is empty.");
    }

    /// <summary>
    /// The schema in the format a client asked for: Confluent's "serialized" gives a Protobuf schema as its base64
    /// FileDescriptorProto; any other format, or another schema type, leaves the text as registered.
    /// </summary>
    private JsonObject InFormat(JsonObject described, int id, string? format)
    {
        if (format == "serialized" && registry.ParsedById(id) is Contracts.Formats.Protobuf.ProtobufParsedSchema protobuf)
        {
            described["schema"] = protobuf.SerializedDescriptor();
        }

        return described;
    }

    private static JsonObject Describe(RegisteredSchema schema)
    {
        var node = new JsonObject
        {
            ["subject"] = schema.Subject,
            ["version"] = schema.Version,
            ["id"] = schema.Id,
        };
        AddSchemaFields(node, schema.Type, schema.Schema, schema.References, schema.Metadata, schema.RuleSet);
        if (schema.Deleted)
        {
            node["deleted"] = true;
        }

        return node;
    }

    private static JsonObject Describe(SchemaById schema)
    {
        var node = new JsonObject();
        AddSchemaFields(node, schema.Type, schema.Schema, schema.References, schema.Metadata, schema.RuleSet);
        return node;
    }

    private static void AddSchemaFields(JsonObject node, SchemaType type, string schema, IReadOnlyList<SchemaReference> references, SchemaMetadata? metadata, string? ruleSet)
    {
        if (type != SchemaType.Avro)
        {
            node["schemaType"] = RegistryNames.Name(type);
        }

        node["schema"] = schema;
        if (references.Count > 0)
        {
            node["references"] = JsonSerializer.SerializeToNode(references, BodyJson);
        }

        if (metadata is not null)
        {
            node["metadata"] = JsonSerializer.SerializeToNode(metadata, BodyJson);
        }

        if (ruleSet is not null)
        {
            node["ruleSet"] = JsonNode.Parse(ruleSet);
        }
    }

    private static JsonArray Array(IEnumerable<JsonNode?> items) => [.. items];

    private static int SchemaId(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int id) ? id : throw SchemaRegistryException.SchemaNotFound($"with id '{text}'");

    private static bool Flag(IQueryCollection query, string name) =>
        string.Equals(query[name], "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Confluent's paging of a listing: <c>offset</c> (from 0) and <c>limit</c> (-1 or absent: all the rest).</summary>
    private static IEnumerable<T> Page<T>(IReadOnlyList<T> items, IQueryCollection query)
    {
        int offset = int.TryParse(query["offset"], NumberStyles.Integer, CultureInfo.InvariantCulture, out int from) ? Math.Max(from, 0) : 0;
        int limit = int.TryParse(query["limit"], NumberStyles.Integer, CultureInfo.InvariantCulture, out int most) && most >= 0 ? most : int.MaxValue;
        return items.Skip(offset).Take(limit);
    }

    /// <summary>
    /// Path segments from the raw target, each percent-decoded once (an encoded '/' stays inside its segment). A '%'
    /// not followed by two hex digits, or escapes that are not UTF-8, is a malformed path: 400, not a subject named
    /// with the literal text.
    /// </summary>
    private static string[] Segments(HttpContext context)
    {
        string raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "/";
        int queryStart = raw.IndexOf('?', StringComparison.Ordinal);
        if (queryStart >= 0)
        {
            raw = raw[..queryStart];
        }

        return [.. raw.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(PercentDecoded)];
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string PercentDecoded(string segment)
    {
        if (!segment.Contains('%', StringComparison.Ordinal))
        {
            return segment;
        }

        var bytes = new List<byte>(segment.Length);
        for (int i = 0; i < segment.Length; i++)
        {
            int escape = segment.IndexOf('%', i);
            if (escape != i)
            {
                int end = escape < 0 ? segment.Length : escape;
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(segment[i..end]));
                i = end - 1;
                continue;
            }

            if (i + 2 >= segment.Length || !byte.TryParse(segment.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte value))
            {
                throw new BadHttpRequestException($"Malformed percent-encoding in the path segment '{segment}'.", 400);
            }

            bytes.Add(value);
            i += 2;
        }

        try
        {
            return StrictUtf8.GetString([.. bytes]);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new BadHttpRequestException($"The path segment '{segment}' escapes bytes that are not UTF-8.", 400);
        }
    }

    private static Task JsonAsync(HttpContext context, JsonNode? node)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = ContentType;
        return context.Response.WriteAsync(node?.ToJsonString(ReadableJson.Options) ?? "null", context.RequestAborted);
    }

    private static Task RawSchemaAsync(HttpContext context, string schema)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = ContentType;
        return context.Response.WriteAsync(schema, context.RequestAborted);
    }

    private static Task ErrorAsync(HttpContext context, int status, int errorCode, string message)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = ContentType;
        var error = new JsonObject { ["error_code"] = errorCode, ["message"] = message };
        return context.Response.WriteAsync(error.ToJsonString(ReadableJson.Options), CancellationToken.None);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry refused {Method} {Path}: {ErrorCode} {Reason}")]
    private partial void LogRefused(string method, PathString path, int errorCode, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry: subject {Subject} has the compatibility level {Level} of data contract {Contract} again")]
    private partial void LogLevelRestored(string subject, CompatibilityLevel level, string contract);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Registry: subject {Subject} could not get back the compatibility level {Level} of data contract {Contract}; apply the contract again")]
    private partial void LogLevelNotRestored(Exception error, string subject, CompatibilityLevel level, string contract);

    [LoggerMessage(Level = LogLevel.Error, Message = "Registry failed on {Method} {Path}")]
    private partial void LogFailed(Exception error, string method, PathString path);
}
