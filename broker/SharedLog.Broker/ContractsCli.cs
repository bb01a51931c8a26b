using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Broker;

/// <summary>
/// <c>sharedlog contracts apply|diff|validate|list</c>: the contract workflow for CI pipelines.
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
               SharedLog.Broker contracts diff FILE [--url URL]
               SharedLog.Broker contracts apply FILE [--url URL] [--actor NAME]
               SharedLog.Broker contracts validate FILE [--registry URL]
          --url       the broker's admin HTTP address (default http://127.0.0.1:9644)
          --registry  the schema registry to check compatibility against (default: offline only)
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        if (args.Length == 0 || args[0] is not ("list" or "diff" or "apply" or "validate"))
        {
            await error.WriteLineAsync(UsageText);
            return Usage;
        }

        string command = args[0];
        string? file = null;
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length)
            {
                options[args[i][2..]] = args[++i];
            }
            else if (file is null && !args[i].StartsWith("--", StringComparison.Ordinal))
            {
                file = args[i];
            }
            else
            {
                await error.WriteLineAsync($"unexpected argument '{args[i]}'\n{UsageText}");
                return Usage;
            }
        }

        if (command != "list" && file is null)
        {
            await error.WriteLineAsync($"{command} needs a contract file\n{UsageText}");
            return Usage;
        }

        // A misspelt option must not pass quietly (a "--regsitry" would turn a compatibility check off and exit 0).
        string[] known = command switch { "list" => ["url"], "diff" => ["url"], "apply" => ["url", "actor"], _ => ["registry"] };
        if (options.Keys.FirstOrDefault(o => !known.Contains(o)) is { } unknown)
        {
            await error.WriteLineAsync($"{command} takes no option '--{unknown}'\n{UsageText}");
            return Usage;
        }

        string url = options.GetValueOrDefault("url", "http://127.0.0.1:9644").TrimEnd('/');
        try
        {
            return command switch
            {
                "list" => await ListAsync(url, output),
                "validate" => await ValidateAsync(file!, options.GetValueOrDefault("registry"), output, error),
                _ => await SendAsync(url, file!, dryRun: command == "diff", options.GetValueOrDefault("actor", Environment.UserName), output, error),
            };
        }
        catch (HttpRequestException e)
        {
            await error.WriteLineAsync($"cannot reach {e.Message}");
            return Unreachable;
        }
        catch (TaskCanceledException)
        {
            await error.WriteLineAsync("the request timed out");
            return Unreachable;
        }
        catch (IOException e)
        {
            await error.WriteLineAsync(e.Message);
            return Invalid;
        }
        catch (Exception e) when (e is JsonException or InvalidCastException or InvalidOperationException or NullReferenceException)
        {
            // Not SharedLog's admin API at that address, or a failure answered without its JSON body.
            await error.WriteLineAsync($"unexpected answer from {url}: {e.Message}");
            return Unreachable;
        }
    }

    private static HttpClient Client() => new() { Timeout = TimeSpan.FromSeconds(30) };

    private static async Task<int> ListAsync(string url, TextWriter output)
    {
        using HttpClient http = Client();
        JsonArray contracts = (JsonArray)JsonNode.Parse(await http.GetStringAsync(new Uri($"{url}/contracts")))!;
        await output.WriteLineAsync($"{"NAME",-30} {"VERSION",7} {"TOPIC",-30} {"CLASS",-12} {"ON FAILURE",-10} OWNER");
        foreach (JsonNode? contract in contracts)
        {
            await output.WriteLineAsync($"{(string?)contract!["name"],-30} {(int)contract["version"]!,7} {(string?)contract["topic"],-30} {(string?)contract["class"],-12} {(string?)contract["onFailure"],-10} {(string?)contract["owner"]}");
        }

        return Ok;
    }

    private static async Task<int> SendAsync(string url, string file, bool dryRun, string actor, TextWriter output, TextWriter error)
    {
        using HttpClient http = Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{url}/contracts{(dryRun ? "?dryRun=true" : "")}"))
        {
            Content = new StringContent(await File.ReadAllTextAsync(file), Encoding.UTF8, "application/yaml"),
        };
        request.Headers.Add(Http.ContractsApi.ActorHeader, actor);
        using HttpResponseMessage response = await http.SendAsync(request);
        JsonNode? body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        if (!response.IsSuccessStatusCode)
        {
            await error.WriteLineAsync($"{(string?)body?["message"]}");
            foreach (JsonNode? problem in body?["problems"]?.AsArray() ?? [])
            {
                await error.WriteLineAsync($"  - {(string?)problem}");
            }

            return Invalid;
        }

        JsonArray diff = body!["diff"]!.AsArray();
        await output.WriteLineAsync(dryRun
            ? $"contract {(string?)body["name"]}: {diff.Count} change(s) against the broker"
            : (bool)body["changed"]! ? $"contract {(string?)body["name"]} is now version {(int)body["version"]!}" : $"contract {(string?)body["name"]} unchanged at version {(int)body["version"]!}");
        foreach (JsonNode? line in diff)
        {
            await output.WriteLineAsync($"  {(string?)line}");
        }

        return Ok;
    }

    private static async Task<int> ValidateAsync(string file, string? registryUrl, TextWriter output, TextWriter error)
    {
        ContractDefinition definition;
        try
        {
            definition = ContractParser.Parse(await File.ReadAllTextAsync(file));
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

        int result = Ok;
        string directory = Path.GetDirectoryName(Path.GetFullPath(file))!;
        foreach ((string side, SchemaRequirement? requirement) in new[] { ("key", definition.Key), ("value", definition.Value) })
        {
            if (requirement?.SchemaFile is not { } schemaFile)
            {
                continue;
            }

            string schemaText = await File.ReadAllTextAsync(Path.Combine(directory, schemaFile));
            if (registryUrl is null)
            {
                continue;
            }

            if (definition.IsPattern && requirement.Subject is null)
            {
                await output.WriteLineAsync($"{side}: the topic is a pattern and names no subject; registry check skipped");
                continue;
            }

            string subject = requirement.SubjectFor(definition.Topic, side == "key", null);
            using HttpClient http = Client();
            string body = JsonSerializer.Serialize(new Dictionary<string, string> { ["schema"] = schemaText, ["schemaType"] = RegistryNames.Name(requirement.SchemaType) });
            using var content = new StringContent(body, Encoding.UTF8);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(Http.SchemaRegistryApi.ContentType);
            using HttpResponseMessage response = await http.PostAsync(new Uri($"{registryUrl.TrimEnd('/')}/compatibility/subjects/{Uri.EscapeDataString(subject)}/versions?verbose=true"), content);
            JsonNode? answer = JsonNode.Parse(await response.Content.ReadAsStringAsync());
            if (!response.IsSuccessStatusCode)
            {
                await error.WriteLineAsync($"{side}: {schemaFile} against subject {subject}: {(string?)answer?["message"]}");
                result = Invalid;
            }
            else if (!(bool)answer!["is_compatible"]!)
            {
                await error.WriteLineAsync($"{side}: {schemaFile} is not compatible with subject {subject}:");
                foreach (JsonNode? message in answer["messages"]?.AsArray() ?? [])
                {
                    await error.WriteLineAsync($"  - {(string?)message}");
                }

                result = Invalid;
            }
            else
            {
                await output.WriteLineAsync($"{side}: {schemaFile} is compatible with subject {subject}");
            }
        }

        if (result == Ok)
        {
            await output.WriteLineAsync($"{file}: valid ({definition.Class.ToString().ToLowerInvariant()} contract for {definition.Topic}, {definition.Rules.Count} rules, {definition.Privacy.Count} privacy rules, on failure {definition.OnFailure.ToString().ToLowerInvariant()})");
        }

        return result;
    }
}
