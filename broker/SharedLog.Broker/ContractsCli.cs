using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;

namespace SharedLog.Broker;

/// <summary>
/// <c>sharedlog contracts apply|diff|validate|list|history|rollback|delete|replay</c>: the contract workflow for CI pipelines.
/// Exit codes: 0 ok, 1 the contract is invalid or incompatible (or apply refused), 2 usage error,
/// 3 the broker or registry could not be reached.
/// </summary>
public static class ContractsCli
{
    public const int Ok = 0;
    public const int Invalid = 1;
    public const int Usage = 2;
    public const int Unreachable = 3;

    private const string UsageText = """
        usage: SharedLog.Broker contracts list [--url URL]
               SharedLog.Broker contracts diff FILE [--url URL] [--actor NAME]
               SharedLog.Broker contracts apply FILE [--url URL] [--actor NAME]
               SharedLog.Broker contracts validate FILE [--registry URL] [--timeout SECONDS]
               SharedLog.Broker contracts history NAME [--url URL]
               SharedLog.Broker contracts rollback NAME --version N [--url URL] [--actor NAME]
               SharedLog.Broker contracts delete NAME [--url URL] [--actor NAME]
               SharedLog.Broker contracts replay SOURCE-TOPIC [--target TOPIC] [--from-offset N] [--to-offset N]
                   [--from-time T] [--to-time T] [--partitions 0,1] [--rules a,b] [--resume-from 0=N,1=N]
                   [--max-records N] [--max-bytes-per-second N] [--id ID] [--quarantine-topic TOPIC] [--dry-run]
                   [--url URL] [--actor NAME]
          --url       the broker's admin HTTP address (default http://127.0.0.1:9644)
          --registry  the schema registry to check compatibility against (default: offline only)
          --timeout   how long validate waits for the registry in all, in seconds (default 60)
          history     every version of contract NAME: apply, rollback or delete, who and when
          rollback    puts the text of version N of contract NAME in force again, as a new version
          delete      removes contract NAME (its history is kept; its topic is no longer checked)
          replay      writes the records quarantined from SOURCE-TOPIC (source offsets from..to, exclusive; times
                      as ISO 8601 or epoch ms) to --target (default: SOURCE-TOPIC), through its contract; with
                      --id its progress is kept, and the same command again continues where it stopped
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        // What the CLI prints may quote a server's answer (a registry's error body, a schema's field names): a CI log shows
        // it, and an escape sequence in it would rewrite the terminal or the log.
        output = new TerminalSafeWriter(output);
        error = new TerminalSafeWriter(error);
        if (args is ["--help"] or ["-h"] or ["help"])
        {
            await output.WriteLineAsync(UsageText);
            return 0;
        }

        if (args.Length == 0 || args[0] is not ("list" or "diff" or "apply" or "validate" or "replay" or "history" or "rollback" or "delete"))
        {
            await error.WriteLineAsync(UsageText);
            return Usage;
        }

        string command = args[0];
        string? file = null;
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        bool optionsEnded = false;
        for (int i = 1; i < args.Length; i++)
        {
            if (!optionsEnded && args[i] is "--help" or "-h")
            {
                // Help asked after a command is help still (a user's `contracts replay --help` was a usage error).
                await output.WriteLineAsync(UsageText);
                return 0;
            }

            if (!optionsEnded && args[i] == "--")
            {
                optionsEnded = true; // what follows is the file or name, even when it starts with "-"
            }
            else if (!optionsEnded && args[i] == "--dry-run")
            {
                if (!options.TryAdd("dry-run", "true"))
                {
                    await error.WriteLineAsync($"option '--dry-run' given more than once\n{UsageText}");
                    return Usage;
                }
            }
            else if (!optionsEnded && args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length)
            {
                // Given twice, which one was meant cannot be known ("--version 3 --version 30" would roll back to 30).
                if (!options.TryAdd(args[i][2..], args[++i]))
                {
                    await error.WriteLineAsync($"option '{args[i - 1]}' given more than once\n{UsageText}");
                    return Usage;
                }
            }
            else if (file is null && (optionsEnded || !args[i].StartsWith("--", StringComparison.Ordinal)))
            {
                file = args[i];
            }
            else
            {
                await error.WriteLineAsync($"unexpected argument '{args[i]}'\n{UsageText}");
                return Usage;
            }
        }

        if (command == "list" && file is not null)
        {
            await error.WriteLineAsync($"unexpected argument '{file}': list takes no file\n{UsageText}");
            return Usage;
        }

        if (command != "list" && file is null)
        {
            await error.WriteLineAsync($"{command} needs {command switch { "replay" => "the source topic", "history" or "rollback" or "delete" => "a contract name", _ => "a contract file" }}\n{UsageText}");
            return Usage;
        }

        // A file that is not there is a mistake in the command line, not a contract that is invalid.
        if (command is "diff" or "apply" or "validate" && !File.Exists(file))
        {
            await error.WriteLineAsync($"{(Directory.Exists(file) ? "a directory, not a contract file" : "no such file")}: {file}\n{UsageText}");
            return Usage;
        }

        // A misspelt option must not pass quietly (a "--regsitry" would turn a compatibility check off and exit 0).
        string[] known = command switch
        {
            "list" => ["url"],
            "diff" => ["url", "actor"],
            "apply" or "delete" => ["url", "actor"],
            "history" => ["url"],
            "rollback" => ["url", "actor", "version"],
            "replay" => ["url", "actor", .. ReplayOptions.Keys, "dry-run"],
            _ => ["registry", "timeout"],
        };
        if (options.Keys.FirstOrDefault(o => !known.Contains(o)) is { } unknown)
        {
            await error.WriteLineAsync($"{command} takes no option '--{unknown}'\n{UsageText}");
            return Usage;
        }

        // "127.0.0.1:9644" without its scheme is the usual slip; it must be a usage error, not a crash in the HTTP client.
        foreach (string addressOption in (string[])["url", "registry"])
        {
            if (options.TryGetValue(addressOption, out string? address) && !IsHttpAddress(address))
            {
                await error.WriteLineAsync($"--{addressOption} must be an http:// or https:// address, not '{address}'\n{UsageText}");
                return Usage;
            }
        }

        TimeSpan registryDeadline = DefaultRegistryCheckDeadline;
        if (options.TryGetValue("timeout", out string? timeout))
        {
            if (!double.TryParse(timeout, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) || !(seconds > 0 && seconds <= 3600))
            {
                await error.WriteLineAsync($"--timeout must be a number of seconds, more than 0 and at most 3600, not '{timeout}'\n{UsageText}");
                return Usage;
            }

            registryDeadline = TimeSpan.FromSeconds(seconds);
        }

        // "." and ".." are no contract's name (the broker refuses them), and a URL path would fold them away.
        if (command is "history" or "rollback" or "delete" && file is "." or ".." or "")
        {
            await error.WriteLineAsync($"'{file}' is not a contract name\n{UsageText}");
            return Usage;
        }

        int rollbackVersion = 0;
        if (command == "rollback" && !(options.TryGetValue("version", out string? version)
            && int.TryParse(version, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out rollbackVersion) && rollbackVersion > 0))
        {
            await error.WriteLineAsync($"rollback needs --version N, the version (a number from 1) to go back to{(version is null ? "" : $", not '{version}'")}\n{UsageText}");
            return Usage;
        }

        string url = options.GetValueOrDefault("url", "http://127.0.0.1:9644").TrimEnd('/');
        string actor = options.GetValueOrDefault("actor", Environment.UserName);
        if (command is not ("list" or "history" or "validate") && !IsHeaderText(actor))
        {
            // The broker records the name as given, so text it would refuse (control characters, line breaks, a broken
            // surrogate pair) is a usage error here rather than a refusal from the broker.
            await error.WriteLineAsync($"--actor must be printable text (no control characters or line breaks){(options.ContainsKey("actor") ? "" : $"; the login name '{actor}' is not, so give --actor")}\n{UsageText}");
            return Usage;
        }
        try
        {
            // The broker takes a contract file of at most this many bytes: validate holds a file to the same limit.
            if (command is "diff" or "apply" or "validate" && new FileInfo(file!).Length is var length && length > ContractParser.MaxDocumentChars)
            {
                await error.WriteLineAsync($"{file}: invalid\n  - a contract file is at most {ContractParser.MaxDocumentChars} bytes; this one is {length}");
                return Invalid;
            }

            return command switch
            {
                "list" => await ListAsync(url, output),
                "validate" => await ValidateAsync(file!, options.GetValueOrDefault("registry"), registryDeadline, output, error),
                "replay" => await ReplayAsync(url, file!, options, actor, output, error),
                "history" => await HistoryAsync(url, file!, output, error),
                "rollback" => await ChangeAsync(url, HttpMethod.Post, $"{ContractPath(file!)}/rollback?version={rollbackVersion}", null, dryRun: false, actor, output, error),
                "delete" => await ChangeAsync(url, HttpMethod.Delete, ContractPath(file!), null, dryRun: false, actor, output, error),
                _ => await ChangeAsync(url, HttpMethod.Post, $"/contracts{(command == "diff" ? "?dryRun=true" : "")}", await ReadInputFileAsync(file!, ContractParser.MaxDocumentChars), dryRun: command == "diff", actor, output, error),
            };
        }
        catch (HttpRequestException e)
        {
            await error.WriteLineAsync($"cannot reach {(command == "validate" ? options.GetValueOrDefault("registry") : url)}: {e.Message}");
            return Unreachable;
        }
        catch (TaskCanceledException)
        {
            await error.WriteLineAsync("the request timed out");
            return Unreachable;
        }
        catch (FileNotFoundException e) when (e.FileName is null || Path.GetFullPath(e.FileName) == Path.GetFullPath(file!))
        {
            // The contract file gone since the check above, or a symbolic link to nothing: the command line's mistake.
            await error.WriteLineAsync($"no such file: {file} ({e.Message})\n{UsageText}");
            return Usage;
        }
        catch (IOException e)
        {
            await error.WriteLineAsync(e.Message);
            return Invalid;
        }
        catch (Exception e) when (e is JsonException or InvalidCastException or InvalidOperationException)
        {
            // Not SharedLog's admin API at that address, or a failure answered without its JSON body.
            await error.WriteLineAsync($"unexpected answer from {(command == "validate" ? options.GetValueOrDefault("registry") : url)}: {e.Message}");
            return Unreachable;
        }
    }

    /// <summary>How long the CLI waits to read a file it was given: opening a FIFO nobody writes to never returns.</summary>
    private static readonly TimeSpan InputFileTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A contract or schema file's text, at most <paramref name="maxChars"/> characters, read within
    /// <see cref="InputFileTimeout"/>: a FIFO or a device (whose size the file system does not tell) is an error, never a hang
    /// or a read without end.
    /// </summary>
    private static async Task<string> ReadInputFileAsync(string path, int maxChars)
    {
        Task<string> read = Task.Run(() =>
        {
            // Strict, as the API is: a replaced byte would change what a rule compares without anyone seeing it.
            using var reader = new StreamReader(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true);
            var text = new StringBuilder();
            char[] chunk = new char[8192];
            int read;
            try
            {
                while ((read = reader.Read(chunk, 0, chunk.Length)) > 0)
                {
                    if (text.Length + read > maxChars)
                    {
                        throw new IOException($"{path}: invalid\n  - a file here is at most {maxChars} characters; this one is longer");
                    }

                    text.Append(chunk, 0, read);
                }
            }
            catch (DecoderFallbackException)
            {
                throw new IOException($"{path}: invalid\n  - the file is not UTF-8 (the broker's API refuses it too)");
            }

            return text.ToString();
        });
        if (await Task.WhenAny(read, Task.Delay(InputFileTimeout)) != read)
        {
            _ = read.ContinueWith(static t => t.Exception, TaskScheduler.Default); // observed, whenever it ends
            throw new IOException($"{path}: could not be read within {InputFileTimeout.TotalSeconds:0} s (a FIFO that nothing writes to?)");
        }

        return await read;
    }

    private static bool IsHeaderText(string value) =>
        value.Length > 0 && !value.Any(ContractParser.IsUnprintable) && !value.Contains('\uFFFD', StringComparison.Ordinal)
        && System.Text.Unicode.Utf8.FromUtf16(value, new byte[value.Length * 3], out _, out _, replaceInvalidSequences: false) == System.Buffers.OperationStatus.Done;

    private static bool IsHttpAddress(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.Host.Length > 0;

    /// <summary>
    /// The most of one answer the CLI reads: a registry's largest answer is one schema (at most a million characters, six
    /// times that escaped); an endless or huge body must fail the command, not fill the CI runner's memory.
    /// </summary>
    private const int MaxAnswerBytes = 16 * 1024 * 1024;

    /// <summary>
    /// An HTTP client for one command: each request waits at most 30 s, or, for <c>validate</c>, as long as its --timeout leaves.
    /// The actor's name goes as UTF-8, as the broker reads it (HttpClient's default, Latin-1, cannot carry most names).
    /// </summary>
    private static HttpClient Client(bool boundedByCaller = false) =>
        new(new SocketsHttpHandler { RequestHeaderEncodingSelector = (name, _) => string.Equals(name, Http.ContractsApi.ActorHeader, StringComparison.OrdinalIgnoreCase) ? Encoding.UTF8 : null })
        { Timeout = boundedByCaller ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(30), MaxResponseContentBufferSize = MaxAnswerBytes };

    /// <summary>Text a server sent, as one line of at most <paramref name="maxChars"/> characters: a line break in it could start a line a CI runner reads as a command.</summary>
    private static string OneLine(string text, int maxChars = 1000)
    {
        string cut = text.Length <= maxChars ? text : string.Concat(text.AsSpan(0, maxChars), $"… ({text.Length - maxChars} more characters)");
        return cut.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }

    private static async Task<int> ListAsync(string url, TextWriter output)
    {
        using HttpClient http = Client();
        using HttpResponseMessage answered = await http.GetAsync(new Uri($"{url}/contracts"));
        string text = await answered.Content.ReadAsStringAsync();
        // Another server's answer (the registry port's 404, a page) is not a list of contracts: said as such, not as "cannot reach".
        JsonArray contracts = answered.IsSuccessStatusCode && text.StartsWith('[') && JsonNode.Parse(text) is JsonArray list
            ? list
            : throw new JsonException($"HTTP {(int)answered.StatusCode} to GET /contracts, so not SharedLog's admin API");
        await output.WriteLineAsync($"{"NAME",-30} {"VERSION",7} {"TOPIC",-30} {"CLASS",-12} {"ON FAILURE",-10} OWNER");
        foreach (JsonNode? contract in contracts)
        {
            await output.WriteLineAsync($"{(string?)contract!["name"],-30} {(int)contract["version"]!,7} {(string?)contract["topic"],-30} {(string?)contract["class"],-12} {(string?)contract["onFailure"],-10} {(string?)contract["owner"]}");
        }

        return Ok;
    }

    /// <summary>The admin API path of one contract; a name is a topic or a pattern, so it is escaped.</summary>
    private static string ContractPath(string name) => $"/contracts/{Uri.EscapeDataString(name)}";

    /// <summary>
    /// An apply, diff, rollback or delete: sends it and prints the new version (or that nothing changed) and the diff.
    /// </summary>
    private static async Task<int> ChangeAsync(string url, HttpMethod method, string pathAndQuery, string? contractText, bool dryRun, string actor, TextWriter output, TextWriter error)
    {
        using HttpClient http = Client();
        using var request = new HttpRequestMessage(method, new Uri($"{url}{pathAndQuery}"));
        if (contractText is not null)
        {
            request.Content = new StringContent(contractText, Encoding.UTF8, "application/yaml");
        }

        request.Headers.Add(Http.ContractsApi.ActorHeader, actor);
        using HttpResponseMessage response = await http.SendAsync(request);
        if (response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.MethodNotAllowed)
        {
            // SharedLog's admin API always has these routes, and names an unknown contract in its own error form:
            // anything else is another server (a registry port, a proxy's default page).
            await ThrowUnlessAdminApiAsync(http, url, response, $"{method} {pathAndQuery}");
        }

        JsonNode? body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        if (!response.IsSuccessStatusCode)
        {
            // The message of an invalid contract joins its problems: they are listed one per line instead, as validate lists them.
            JsonArray? problems = body?["problems"] as JsonArray;
            await error.WriteLineAsync(problems is { Count: > 0 } ? "refused: the contract is invalid" : $"{(string?)body?["message"]}");
            foreach (JsonNode? problem in problems ?? [])
            {
                await error.WriteLineAsync($"  - {(string?)problem}");
            }

            return Invalid;
        }

        if (body is null)
        {
            throw new JsonException("the answer is empty");
        }

        JsonArray diff = body["diff"] as JsonArray ?? throw new JsonException("the answer has no diff");
        bool changed = (bool)(body["changed"] ?? throw new JsonException("the answer has no changed flag"));
        await output.WriteLineAsync(
            dryRun ? $"contract {(string?)body["name"]}: {diff.Count} change(s) against the broker"
            : !changed ? $"contract {(string?)body["name"]} unchanged at version {(int)body["version"]!}"
            : method == HttpMethod.Delete ? $"contract {(string?)body["name"]} deleted (version {(int)body["version"]!} records the delete)"
            : $"contract {(string?)body["name"]} is now version {(int)body["version"]!}");
        foreach (JsonNode? line in diff)
        {
            await output.WriteLineAsync($"  {(string?)line}");
        }

        // The registry's compatibility levels the change set (or gave back to subjects the contract no longer binds).
        foreach (JsonNode? level in body["registry"] as JsonArray ?? [])
        {
            await output.WriteLineAsync(dryRun ? $"  registry, once applied: {(string?)level}" : $"  registry: {(string?)level}");
        }

        // A contract every record fails for now (its schema not registered yet): taken, but said.
        foreach (JsonNode? warning in body["warnings"] as JsonArray ?? [])
        {
            await error.WriteLineAsync($"warning: {(string?)warning}");
        }

        return Ok;
    }

    /// <summary>Every version of one contract, oldest first, as the broker keeps them.</summary>
    private static async Task<int> HistoryAsync(string url, string name, TextWriter output, TextWriter error)
    {
        using HttpClient http = Client();
        string path = ContractPath(name);
        using HttpResponseMessage response = await http.GetAsync(new Uri($"{url}{path}"));
        if (response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.MethodNotAllowed)
        {
            await ThrowUnlessAdminApiAsync(http, url, response, $"GET {path}");
        }

        JsonNode body = JsonNode.Parse(await response.Content.ReadAsStringAsync()) ?? throw new JsonException("the answer is empty");
        if (!response.IsSuccessStatusCode)
        {
            await error.WriteLineAsync((string?)body["message"]);
            return Invalid;
        }

        JsonArray history = body["history"] as JsonArray ?? throw new JsonException("the answer has no history");
        await output.WriteLineAsync($"{"VERSION",7} {"ACTION",-8} {"FROM",4} {"AT",-33} ACTOR");
        foreach (JsonNode? revision in history)
        {
            await output.WriteLineAsync($"{(int)revision!["version"]!,7} {(string?)revision["action"],-8} {(int?)revision["fromVersion"],4} {(string?)revision["at"],-33} {(string?)revision["actor"]}");
        }

        return Ok;
    }

    /// <summary>
    /// After a 404 or 405: returns when the answer came from SharedLog's admin API (an unknown contract or topic, said in
    /// its JSON error form, and <c>GET /contracts</c> served), else throws, since the address is some other server.
    /// </summary>
    private static async Task ThrowUnlessAdminApiAsync(HttpClient http, string url, HttpResponseMessage answered, string request)
    {
        string text = await answered.Content.ReadAsStringAsync();
        bool errorForm = answered.StatusCode == System.Net.HttpStatusCode.NotFound && text.StartsWith('{') && JsonNode.Parse(text)?["error_code"] is not null;
        if (errorForm)
        {
            using HttpResponseMessage contracts = await http.GetAsync(new Uri($"{url}/contracts"));
            if (contracts.IsSuccessStatusCode)
            {
                return;
            }
        }

        throw new JsonException($"HTTP {(int)answered.StatusCode} to {request}, so not SharedLog's admin API");
    }

    /// <summary>Replay options and the key of <c>POST /replays</c> each sets.</summary>
    private static readonly Dictionary<string, string> ReplayOptions = new(StringComparer.Ordinal)
    {
        ["target"] = "target",
        ["quarantine-topic"] = "quarantineTopic",
        ["from-offset"] = "fromOffset",
        ["to-offset"] = "toOffset",
        ["from-time"] = "fromTimestamp",
        ["to-time"] = "toTimestamp",
        ["partitions"] = "partitions",
        ["rules"] = "rules",
        ["resume-from"] = "resumeFrom",
        ["max-records"] = "maxRecords",
        ["max-bytes-per-second"] = "maxBytesPerSecond",
        ["id"] = "id",
    };

    /// <summary>
    /// Sends a replay to the broker and prints what it did: exit 0 when every picked record was written, 1 when the
    /// target refused some or the replay stopped early (with where to resume), or the request was refused.
    /// </summary>
    private static async Task<int> ReplayAsync(string url, string source, Dictionary<string, string> options, string actor, TextWriter output, TextWriter error)
    {
        var request = new JsonObject { ["source"] = source, ["dryRun"] = options.ContainsKey("dry-run") };
        foreach ((string option, string key) in ReplayOptions)
        {
            if (!options.TryGetValue(option, out string? value))
            {
                continue;
            }

            // Numbers go as numbers and lists as lists; a value that is neither is sent as text for the broker to refuse or read.
            request[key] = key switch
            {
                "partitions" => new JsonArray([.. value.Split(',', StringSplitOptions.TrimEntries).Select(p => long.TryParse(p, out long n) ? (JsonNode)n : p)]),
                "rules" => new JsonArray([.. value.Split(',', StringSplitOptions.TrimEntries).Select(r => (JsonNode)r)]),
                "resumeFrom" => ResumeOffsets(value),
                "fromOffset" or "toOffset" or "fromTimestamp" or "toTimestamp" or "maxRecords" or "maxBytesPerSecond"
                    when long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long number) => number,
                _ => value,
            };
        }

        using HttpClient http = Client();
        http.Timeout = TimeSpan.FromMinutes(10); // a replay of many records takes a while
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri($"{url}/replays")) { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        message.Headers.Add(Http.ContractsApi.ActorHeader, actor);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(message);
        }
        catch (TaskCanceledException)
        {
            // Not "unreachable" (exit 3): the broker took the replay and goes on with it; running it again unnamed
            // would write its records twice.
            await error.WriteLineAsync($"no answer within {http.Timeout.TotalMinutes:0} minutes: the replay goes on in the broker; its end, with where to resume (resumeFrom), is in _contract_audit and the broker log (a replay given --id resumes where it stopped if run again)");
            return Invalid;
        }

        using HttpResponseMessage answered = response;
        if (answered.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.MethodNotAllowed)
        {
            // SharedLog answers 404 for a topic it does not have; a server without POST /replays (the registry's port,
            // say) answers it for the path.
            await ThrowUnlessAdminApiAsync(http, url, answered, "POST /replays");
        }

        JsonNode body = JsonNode.Parse(await answered.Content.ReadAsStringAsync()) ?? throw new JsonException("the answer is empty");
        if (body["error_code"] is not null)
        {
            await error.WriteLineAsync((string?)body["message"]);

            // A request the broker refuses as malformed (HTTP 400: a bad filter, an out-of-range number) is a usage error.
            return answered.StatusCode == System.Net.HttpStatusCode.BadRequest ? Usage : Invalid;
        }

        bool complete = (bool)body["complete"]!;
        long refused = (long)body["refused"]!;
        long quarantinedAgain = (long?)body["quarantinedAgain"] ?? 0;
        await output.WriteLineAsync(
            $"replay {(string?)body["id"]} of {(string?)body["quarantineTopic"]} into {(string?)body["target"]}{((bool)body["dryRun"]! ? " (dry run)" : "")}: " +
            $"{(long)body["matched"]!} matched, {(long)body["written"]!} written, {(quarantinedAgain > 0 ? $"{quarantinedAgain} quarantined again, " : "")}{refused} refused, {(complete ? "complete" : "not complete")}");
        if (quarantinedAgain > 0)
        {
            // Taken by the target but not stored there: a pipeline must not read this replay as the fix it was meant to be.
            await error.WriteLineAsync($"note: {quarantinedAgain} record(s) still fail the target's contract and went back to its quarantine topic (their offsets in {(string?)body["target"]} are gaps); fix the contract or the records, then replay them with another id");
        }

        if ((long?)body["requarantined"] is > 0 and long requarantined)
        {
            await error.WriteLineAsync($"note: {requarantined} record(s) this replay wrote before were quarantined again by the target's contract and were left alone; fix the contract, then replay them with another id");
        }

        if ((long?)body["fromDeletedTopic"] is > 0 and long fromDeleted)
        {
            await error.WriteLineAsync($"note: {fromDeleted} quarantined record(s) of an earlier topic named {(string?)body["source"]} (deleted since) were left out");
        }

        if ((long?)body["pastTargetRetention"] is > 0 and long pastRetention)
        {
            await error.WriteLineAsync($"warning: {pastRetention} of these records are older than {(string?)body["target"]} keeps records (its retention.ms): retention deletes them soon after they are written");
        }

        foreach (JsonNode? range in body["writtenRanges"]?.AsArray() ?? [])
        {
            (long first, long last, long stored) = ((long)range!["firstOffset"]!, (long)range["lastOffset"]!, (long)range["records"]!);
            await output.WriteLineAsync($"  written to partition {(int)range["partition"]!}: offsets {first}-{last}{(stored < last - first + 1 ? $" ({stored} stored, the others quarantined again)" : "")}");
        }

        foreach (JsonNode? refusal in body["refusals"]?.AsArray() ?? [])
        {
            await output.WriteLineAsync($"  refused: quarantine {(int)refusal!["quarantinePartition"]!}@{(long)refusal["quarantineOffset"]!} (source partition {(int)refusal["sourcePartition"]!} offset {(long)refusal["sourceOffset"]!}): {(string?)refusal["error"]} {(string?)refusal["message"]}");
        }

        if ((string?)body["error"] is { } stopped)
        {
            await error.WriteLineAsync($"stopped: {stopped}");
        }

        if (!complete)
        {
            string resume = string.Join(',', (body["partitions"]?.AsArray() ?? []).Select(p => $"{(int)p!["quarantinePartition"]!}={(long)p["nextOffset"]!}"));
            await output.WriteLineAsync($"  resume with --resume-from {resume}");
        }

        return complete && refused == 0 && quarantinedAgain == 0 ? Ok : Invalid;

        // "0=12,1=40" as {"0": 12, "1": 40}; a pair that is not one goes as it is, for the broker to refuse by name.
        static JsonObject ResumeOffsets(string pairs)
        {
            var offsets = new JsonObject();
            foreach (string pair in pairs.Split(',', StringSplitOptions.TrimEntries))
            {
                offsets[pair.Split('=') is [string partition, _] ? partition : pair] = pair.Split('=') is [_, string offset] && long.TryParse(offset, out long at) ? at : pair;
            }

            return offsets;
        }
    }

    private static ISchemaFormat[] SchemaFormats() =>
        [new Contracts.Formats.Avro.AvroSchemaFormat(), new Contracts.Formats.Json.JsonSchemaFormat(), new Contracts.Formats.Protobuf.ProtobufSchemaFormat()];

    private static async Task<SchemaRegistry> LocalRegistryAsync()
    {
        var local = new SchemaRegistry(
            SchemaFormats(),
            new Contracts.InMemoryJournal(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<SchemaRegistry>.Instance);
        await local.LoadAsync(CancellationToken.None);
        return local;
    }

    /// <summary>
    /// The candidate checked against the subject's live versions in the registry at the contract's level, the level
    /// applying the contract gives the subject (the registry's own check would use the subject's level of now). The
    /// versions, and the schemas they reference, are copied into <paramref name="local"/> and checked there.
    /// </summary>
    private static async Task<RegistryCheck> CheckAgainstRegistryAsync(RegistryCopy registry, string subject, SchemaRequest candidate, CompatibilityLevel level, CancellationToken cancellationToken)
    {
        if (await registry.ListVersionsAsync(subject, cancellationToken) is not { } versions)
        {
            return RegistryCheck.NewSubject; // a new subject has nothing to be compatible with
        }

        await registry.Local.SetCompatibilityAsync(null, CompatibilityLevel.None, CancellationToken.None);
        foreach (int version in versions)
        {
            try
            {
                await registry.CopyAsync(new SchemaReference(subject, subject, version), depth: 0, cancellationToken);
            }
            catch (SchemaRegistryException e)
            {
                // A version this build cannot read (another registry's dialect): compatibility with it is unknown, not granted.
                return RegistryCheck.NotVerified($"version {version} of subject '{subject}' (or a schema it references) cannot be read here ({e.Message})");
            }
        }

        await registry.Local.SetCompatibilityAsync(subject, level, CancellationToken.None);
        // The registry's answer ends, as Confluent's does, with the level it checked at, which the CLI's heading names already.
        return new RegistryCheck([.. registry.Local.CheckCompatibility(subject, null, candidate).Messages.Where(m => !m.StartsWith("{compatibility: ", StringComparison.Ordinal))], Verified: true);
    }

    /// <summary>
    /// A schema registry's subject versions copied, on demand, into a registry in this process, with the registry's own ids
    /// and version numbers (IMPORT mode), so that references between them resolve here as they do there.
    /// </summary>
    private sealed class RegistryCopy(string url, HttpClient http, SchemaRegistry local)
    {
        /// <summary>Most subject versions one check copies (a schema and everything it references, however deep).</summary>
        private const int MaxCopied = 1_000;

        private readonly Dictionary<(string Subject, int Version), ResolvedReference> _copied = [];

        public string Url { get; } = url;

        public HttpClient Http { get; } = http;

        public SchemaRegistry Local { get; } = local;

        /// <summary>The subject's live versions in the registry; null when the registry says it has no such subject.</summary>
        public async Task<List<int>?> ListVersionsAsync(string subject, CancellationToken cancellationToken)
        {
            string subjectPath = $"{Url}/subjects/{Uri.EscapeDataString(subject)}";
            using HttpResponseMessage listed = await Http.GetAsync(new Uri($"{subjectPath}/versions"), cancellationToken);
            if (listed.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                // Only the registry's own "subject not found" says so. Any other 404 (the admin port, a wrong path) would pass
                // every check against an address that is no registry.
                return RegistryErrorCode(await listed.Content.ReadAsStringAsync(cancellationToken)) == RegistryErrorCodes.SubjectNotFound
                    ? null
                    : throw new InvalidOperationException($"{subjectPath}/versions answered 404 without the registry's subject-not-found error ({RegistryErrorCodes.SubjectNotFound}): is {Url} a schema registry?");
            }

            listed.EnsureSuccessStatusCode();
            var versions = new List<int>();
            foreach (JsonNode? item in JsonNode.Parse(await listed.Content.ReadAsStringAsync(cancellationToken))!.AsArray())
            {
                versions.Add(item is JsonValue value && value.TryGetValue(out int version)
                    ? version
                    : throw new JsonException($"{subjectPath}/versions is not a list of version numbers (it holds {OneLine(item?.ToJsonString() ?? "null", 40)})"));
            }

            return versions;
        }

        /// <summary>Copies the version <paramref name="reference"/> names and, first, what it references; returns it resolved (its text and theirs).</summary>
        public async Task<ResolvedReference> CopyAsync(SchemaReference reference, int depth, CancellationToken cancellationToken)
        {
            if (_copied.TryGetValue((reference.Subject, reference.Version), out ResolvedReference? known))
            {
                return known with { Name = reference.Name };
            }

            if (depth > SchemaLimits.MaxDepth || _copied.Count >= MaxCopied)
            {
                throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"references nested more than {SchemaLimits.MaxDepth} deep, or more than {MaxCopied} of them");
            }

            using HttpResponseMessage answer = await Http.GetAsync(new Uri($"{Url}/subjects/{Uri.EscapeDataString(reference.Subject)}/versions/{reference.Version}"), cancellationToken);
            string body = await answer.Content.ReadAsStringAsync(cancellationToken);
            if (!answer.IsSuccessStatusCode)
            {
                throw RegistryErrorCode(body) is RegistryErrorCodes.SubjectNotFound or RegistryErrorCodes.VersionNotFound
                    ? new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"reference '{reference.Name}' names subject '{reference.Subject}' version {reference.Version}, which the registry does not have")
                    : new HttpRequestException($"{Url} answered {(int)answer.StatusCode} for subject '{reference.Subject}' version {reference.Version}: {OneLine(body)}");
            }

            JsonNode stored = JsonNode.Parse(body)!;
            string text = (string?)stored["schema"] ?? throw new JsonException($"version {reference.Version} of '{reference.Subject}' has no schema");
            _ = RegistryNames.TryParseType((string?)stored["schemaType"], out SchemaType type);
            var references = new List<SchemaReference>();
            var resolved = new List<ResolvedReference>();
            foreach (JsonNode? item in stored["references"]?.AsArray() ?? [])
            {
                var nested = new SchemaReference((string?)item?["name"] ?? "", (string?)item?["subject"] ?? "", (int?)item?["version"] ?? 0);
                references.Add(nested);
                resolved.Add(await CopyAsync(nested, depth + 1, cancellationToken));
            }

            int version = (int?)stored["version"] ?? reference.Version;
            await Local.SetModeAsync(reference.Subject, RegistryMode.Import, force: true, CancellationToken.None);
            await Local.RegisterAsync(reference.Subject, new SchemaRequest(text, type, references, Id: (int?)stored["id"], Version: version), CancellationToken.None);
            var copied = new ResolvedReference(reference.Name, reference.Subject, version, text, resolved);
            _copied[(reference.Subject, reference.Version)] = copied;
            return copied;
        }
    }

    /// <summary>What checking a schema file against a subject found: problems (none: compatible), and whether the check could be made at all.</summary>
    private readonly record struct RegistryCheck(IReadOnlyList<string> Problems, bool Verified, bool SubjectIsNew = false)
    {
        public static RegistryCheck NewSubject => new([], Verified: true, SubjectIsNew: true);

        public static RegistryCheck NotVerified(string why) => new([why], Verified: false);
    }

    /// <summary>
    /// How long <c>validate --registry</c> waits for the registry in all unless <c>--timeout</c> says otherwise, however many
    /// versions a subject has (its requests have no time limit of their own): a pipeline step must end.
    /// </summary>
    private static readonly TimeSpan DefaultRegistryCheckDeadline = TimeSpan.FromSeconds(60);

    /// <summary>The <c>error_code</c> of a registry's error body; null for any other body (empty, not JSON, no such number).</summary>
    private static int? RegistryErrorCode(string body)
    {
        try
        {
            return JsonNode.Parse(body)?["error_code"] is JsonValue value && value.TryGetValue(out int code) ? code : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Checks the contract's schema files (offline, then against the registry when given); fills <paramref name="schemaFiles"/> with those that parse.</summary>
    private static async Task<int> ValidateSchemaFilesAsync(
        ContractDefinition definition, string directory, string? registryUrl, Dictionary<bool, IParsedSchema> schemaFiles, TextWriter output, TextWriter error, CancellationToken registryWait)
    {
        int result = Ok;
        foreach ((string side, SchemaRequirement? requirement) in new[] { ("key", definition.Key), ("value", definition.Value) })
        {
            if (requirement?.SchemaFile is not { } schemaFile)
            {
                continue;
            }

            string schemaPath = Path.Combine(directory, schemaFile);
            if (!File.Exists(schemaPath))
            {
                await error.WriteLineAsync($"{side}: schema file {schemaFile} not found (looked for {schemaPath})");
                result = Invalid;
                continue;
            }

            string schemaText = await ReadInputFileAsync(schemaPath, SchemaLimits.MaxSchemaChars);
            IReadOnlyList<SchemaReference> references = requirement.References ?? [];
            var candidate = new SchemaRequest(schemaText, requirement.SchemaType, references);
            using SchemaRegistry local = await LocalRegistryAsync();
            using HttpClient http = Client(boundedByCaller: true);
            RegistryCopy? registry = registryUrl is null ? null : new RegistryCopy(registryUrl.TrimEnd('/'), http, local);
            var resolved = new List<ResolvedReference>();
            if (references.Count > 0)
            {
                // The schemas the file refers to are in the registry only: without it the file cannot be read at all.
                if (registry is null)
                {
                    await output.WriteLineAsync($"{side}: {schemaFile} refers to registered schemas ({string.Join(", ", references.Select(r => $"{r.Subject} version {r.Version}"))}), which only --registry resolves: not checked offline");
                    continue;
                }

                try
                {
                    foreach (SchemaReference reference in references)
                    {
                        resolved.Add(await registry.CopyAsync(reference, depth: 0, registryWait));
                    }
                }
                catch (SchemaRegistryException e)
                {
                    await error.WriteLineAsync($"{side}: the references of {schemaFile} cannot be read: {e.Message}");
                    result = Invalid;
                    continue;
                }
            }

            // The schema file must be a schema of its language (with its references, copied above from the registry).
            try
            {
                local.CheckCompatibility("offline", null, candidate);
            }
            catch (SchemaRegistryException e) when (e.ErrorCode == RegistryErrorCodes.InvalidSchema)
            {
                await error.WriteLineAsync($"{side}: {schemaFile} is not a valid {RegistryNames.Name(requirement.SchemaType)} schema: {e.Message}");
                result = Invalid;
                continue;
            }

            schemaFiles[side == "key"] = Array.Find(SchemaFormats(), f => f.Type == requirement.SchemaType)!.Parse(schemaText, resolved, normalize: false);
            string? recordName = null;
            if (requirement.Subject is null && requirement.Strategy != SubjectNameStrategy.TopicNameStrategy)
            {
                // The record name strategies name the subject after the schema file's record, as the serializers will: a file
                // without one can never be used under them, which the file alone shows (offline too).
                recordName = SchemaRecordNames.Of(schemaFiles[side == "key"]);
                if (recordName is null)
                {
                    await error.WriteLineAsync($"{side}: {schemaFile} names no record (an Avro named type, a Protobuf message, a JSON schema title), which {requirement.Strategy} needs for a subject");
                    result = Invalid;
                    continue;
                }
            }

            if (registry is null)
            {
                continue;
            }

            // A topic pattern leaves the subject open unless it comes from the record name alone (RecordNameStrategy).
            if (requirement.Subject is null && definition.IsPattern && requirement.Strategy != SubjectNameStrategy.RecordNameStrategy)
            {
                await output.WriteLineAsync($"{side}: the subject depends on the topic, which the pattern leaves open; registry check skipped");
                continue;
            }

            string subject = requirement.SubjectFor(definition.Topic, side == "key", recordName);
            RegistryCheck check = await CheckAgainstRegistryAsync(registry, subject, candidate, definition.Compatibility, registryWait);
            if (check.Problems.Count > 0)
            {
                await error.WriteLineAsync(check.Verified
                    ? $"{side}: {schemaFile} is not compatible with subject {subject} at {RegistryNames.Name(definition.Compatibility)}:"
                    : $"{side}: whether {schemaFile} is compatible with subject {subject} at {RegistryNames.Name(definition.Compatibility)} could not be verified:");
                foreach (string problem in check.Problems)
                {
                    await error.WriteLineAsync($"  - {OneLine(problem)}");
                }

                result = Invalid;
            }
            else
            {
                await output.WriteLineAsync(check.SubjectIsNew
                    ? $"{side}: subject {subject} has no versions (soft-deleted ones are not compared), so {schemaFile} has nothing to be compatible with"
                    : $"{side}: {schemaFile} is compatible with subject {subject} at {RegistryNames.Name(definition.Compatibility)}");
                if (recordName is not null)
                {
                    // The broker cannot name record-strategy subjects ahead, so apply leaves their level as the registry has it.
                    await output.WriteLineAsync($"{side}: note: applying this contract does not set {subject}'s level to {RegistryNames.Name(definition.Compatibility)}; set it in the registry (PUT /config/{subject}) or name the subject in the contract");
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Copies into <paramref name="local"/> the registered versions of each side without a schema file whose subject the
    /// contract names (with what they reference), for the checks of rule and privacy field names apply makes against them.
    /// </summary>
    /// <returns>The versions that could not be read here, and why: the rules and privacy rules are not checked against them.</returns>
    private static async Task<List<string>> CopyRegisteredSchemasAsync(ContractDefinition definition, string registryUrl, SchemaRegistry local, Dictionary<bool, IParsedSchema> schemaFiles, CancellationToken cancellationToken)
    {
        var unread = new List<string>();
        using HttpClient http = Client(boundedByCaller: true);
        var registry = new RegistryCopy(registryUrl.TrimEnd('/'), http, local);
        foreach ((SchemaRequirement? requirement, bool isKey) in new[] { (definition.Key, true), (definition.Value, false) })
        {
            if (requirement is null || schemaFiles.ContainsKey(isKey) || ContractRegistrySync.NamedSubject(definition, requirement, isKey) is not { } subject)
            {
                continue;
            }

            foreach (int version in await registry.ListVersionsAsync(subject, cancellationToken) ?? [])
            {
                if (requirement.Admits(version))
                {
                    try
                    {
                        await registry.CopyAsync(new SchemaReference(subject, subject, version), depth: 0, cancellationToken);
                    }
                    catch (SchemaRegistryException e)
                    {
                        // Another registry's version this build cannot read (SharedLog's would not have taken it): what the
                        // privacy rules would do to its records is unknown, not fine.
                        unread.Add($"version {version} of subject '{subject}' (or a schema it references) cannot be read here ({e.Message})");
                    }
                }
            }
        }

        return unread;
    }

    private static async Task<int> ValidateAsync(string file, string? registryUrl, TimeSpan registryDeadline, TextWriter output, TextWriter error)
    {
        ContractDefinition definition;
        try
        {
            definition = ContractParser.Parse(await ReadInputFileAsync(file, ContractParser.MaxDocumentChars));
            IReadOnlyList<string> ruleProblems = ContractGate.CompileProblems(definition);
            if (ruleProblems.Count > 0)
            {
                throw new ContractValidationException(ruleProblems);
            }
        }
        catch (ContractValidationException e)
        {
            await error.WriteLineAsync($"{file}: invalid");
            foreach (string problem in e.Problems)
            {
                await error.WriteLineAsync($"  - {problem}");
            }

            return Invalid;
        }

        int result;
        List<string> warnings = [];
        using var registryWait = new CancellationTokenSource(registryDeadline);
        string directory = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var schemaFiles = new Dictionary<bool, IParsedSchema>();
        using SchemaRegistry registered = await LocalRegistryAsync();
        try
        {
            result = await ValidateSchemaFilesAsync(definition, directory, registryUrl, schemaFiles, output, error, registryWait.Token);
            if (registryUrl is not null && (definition.Privacy.Count > 0 || definition.Rules.Count > 0))
            {
                List<string> unread = await CopyRegisteredSchemasAsync(definition, registryUrl, registered, schemaFiles, registryWait.Token);
                if (unread.Count > 0)
                {
                    await error.WriteLineAsync($"{file}: whether the rules and privacy rules fit the schemas registered at {registryUrl} could not be verified:");
                    foreach (string why in unread)
                    {
                        await error.WriteLineAsync($"  - {OneLine(why)}");
                    }

                    result = Invalid;
                }
            }
            else if (registryUrl is not null && definition.Key?.SchemaFile is null && definition.Value?.SchemaFile is null)
            {
                // Nothing needs the registry, but a pipeline that names one must not pass while it is down or mistyped.
                await ProbeRegistryAsync(registryUrl, registryWait.Token);
            }

            if (registryUrl is not null && result == Ok)
            {
                warnings = await UnservedSidesAsync(definition, registryUrl, registered, registryWait.Token);
            }
        }
        catch (OperationCanceledException) when (registryWait.IsCancellationRequested)
        {
            await error.WriteLineAsync($"{registryUrl} did not finish answering the compatibility check within {registryDeadline.TotalSeconds:0.###} s (--timeout)");
            return Unreachable;
        }

        // A side with a schema file is checked against it; one without, with --registry, against the registered versions the
        // contract admits, as apply will check it.
        Func<SchemaRequirement, bool, IReadOnlyList<IParsedSchema>?> admitted =
            (requirement, isKey) => schemaFiles.TryGetValue(isKey, out IParsedSchema? parsed) ? [parsed] : ContractRegistrySync.RegisteredSchemas(registered, definition, requirement, isKey);
        List<string> fieldProblems = [.. SchemaFieldPaths.RuleFieldProblems(definition, admitted), .. SchemaFieldPaths.PrivacyPathProblems(definition, admitted)];
        if (fieldProblems.Count > 0)
        {
            // Listed as the file's other problems are (a user's review found these alone without the heading).
            await error.WriteLineAsync($"{file}: invalid");
            foreach (string problem in fieldProblems)
            {
                await error.WriteLineAsync($"  - {problem}");
            }

            result = Invalid;
        }

        if (result == Ok)
        {
            await output.WriteLineAsync($"{file}: valid ({definition.ClassName} contract for {definition.Topic}, {Count(definition.Rules.Count, "rule")}, {Count(definition.Privacy.Count, "privacy rule")}, on failure {definition.OnFailure.ToString().ToLowerInvariant()})");
            if (registryUrl is not null && definition.Key?.SchemaFile is null && definition.Value?.SchemaFile is null)
            {
                // A pipeline passing --registry expects a compatibility check: say that there was nothing to check.
                bool anyRegistered = (definition.Key is { } key && admitted(key, true) is { Count: > 0 }) || (definition.Value is { } value && admitted(value, false) is { Count: > 0 });
                await output.WriteLineAsync(definition.Privacy.Count > 0 || definition.Rules.Count > 0
                    ? anyRegistered
                        ? $"{file}: no schemaFile, so no compatibility was checked against {registryUrl} (the names the rules and privacy rules use were checked against its registered schemas)"
                        : $"{file}: no schemaFile, and {registryUrl} has no schema the contract admits, so nothing was checked against it (not the names the rules and privacy rules use either)"
                    : $"{file}: no schemaFile, so nothing was checked against {registryUrl}");
            }

            foreach (string warning in warnings)
            {
                await error.WriteLineAsync($"{file}: warning: {warning}");
            }
        }

        return result;
    }

    /// <summary>The sides whose named subject has no version the contract admits at <paramref name="registryUrl"/>, as apply warns of them.</summary>
    private static async Task<List<string>> UnservedSidesAsync(ContractDefinition definition, string registryUrl, SchemaRegistry local, CancellationToken cancellationToken)
    {
        var warnings = new List<string>();
        using HttpClient http = Client(boundedByCaller: true);
        var registry = new RegistryCopy(registryUrl.TrimEnd('/'), http, local);
        foreach ((SchemaRequirement? requirement, bool isKey) in new[] { (definition.Key, true), (definition.Value, false) })
        {
            if (requirement is not null && ContractRegistrySync.NamedSubject(definition, requirement, isKey) is { } subject
                && ContractRegistrySync.UnservedSide(definition, isKey, subject, await registry.ListVersionsAsync(subject, cancellationToken) ?? [], requirement) is { } warning)
            {
                warnings.Add(warning);
            }
        }

        return warnings;
    }

    /// <summary>Throws as an unreachable registry would when <paramref name="registryUrl"/> does not answer its global <c>/config</c> as a registry does.</summary>
    private static async Task ProbeRegistryAsync(string registryUrl, CancellationToken cancellationToken)
    {
        using HttpClient http = Client(boundedByCaller: true);
        string configPath = $"{registryUrl.TrimEnd('/')}/config";
        using HttpResponseMessage answer = await http.GetAsync(new Uri(configPath), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (answer.StatusCode is System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden)
        {
            throw new InvalidOperationException($"{configPath} answered {(int)answer.StatusCode}: the CLI sends no credentials, so it cannot check a registry that requires them");
        }

        // A registry's /config is a few dozen bytes: read at most 64 KiB of whatever answers.
        var head = new byte[64 * 1024];
        await using Stream content = await answer.Content.ReadAsStreamAsync(cancellationToken);
        int read = await content.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        if (!answer.IsSuccessStatusCode || !System.Text.Encoding.UTF8.GetString(head, 0, read).Contains("\"compatibilityLevel\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{configPath} answered {(int)answer.StatusCode} without a compatibility level: is {registryUrl} a schema registry?");
        }
    }

    /// <summary>"1 rule", "2 rules".</summary>
    private static string Count(int count, string noun) => $"{count} {noun}{(count == 1 ? "" : "s")}";
}

/// <summary>
/// A writer that shows control characters (an escape sequence, a carriage return) and Unicode line separators and
/// direction overrides as <c>\uXXXX</c>, keeping line breaks and tabs: text from a server cannot rewrite a terminal or a log.
/// </summary>
internal sealed class TerminalSafeWriter(TextWriter inner) : TextWriter
{
    public override System.Text.Encoding Encoding => inner.Encoding;

    public override void Write(char value) => inner.Write(Safe(value.ToString()));

    public override void Write(string? value) => inner.Write(Safe(value));

    public override void Write(char[] buffer, int index, int count) => inner.Write(Safe(new string(buffer, index, count)));

    public override void WriteLine(string? value) => inner.WriteLine(Safe(value));

    public override Task WriteAsync(string? value) => inner.WriteAsync(Safe(value));

    public override Task WriteLineAsync(string? value) => inner.WriteLineAsync(Safe(value));

    public override void Flush() => inner.Flush();

    public override Task FlushAsync() => inner.FlushAsync();

    private static bool Shown(string text, int index) => text[index] switch
    {
        '\n' or '\t' => true,
        '\r' => index + 1 < text.Length && text[index + 1] == '\n', // a line end written as CR LF
        char c => !(char.IsControl(c) || c is '\u2028' or '\u2029' or (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069')),
    };

    internal static string? Safe(string? text)
    {
        int first = 0;
        while (text is not null && first < text.Length && Shown(text, first))
        {
            first++;
        }

        if (text is null || first == text.Length)
        {
            return text;
        }

        var safe = new System.Text.StringBuilder(text.Length + 16).Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            if (Shown(text, i))
            {
                safe.Append(text[i]);
            }
            else
            {
                safe.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)text[i]:X4}");
            }
        }

        return safe.ToString();
    }
}
