using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SharedLog.IntegrationTests;

/// <summary>
/// The schema registry and contracts APIs under schemas and contracts no client would send: valid Avro, JSON Schema and
/// Protobuf schemas and a contract, with random values swapped into their JSON, characters cut, repeated or inserted,
/// registered, checked for compatibility, looked up and applied (so the parsers and the compatibility checkers meet
/// them too). Every answer must come within a deadline and be a client error at worst: a 5xx or an error in the log is
/// a bug. Seeded, so a failure reproduces (SHAREDLOG_FUZZ_SEED explores others).
/// </summary>
public class HttpApiFuzzTests
{
    private const int Rounds = 300;
    private const string RegistryJson = "application/vnd.schemaregistry.v1+json";
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("SHAREDLOG_FUZZ_SEED"), out int seed) ? seed : 20261204;

    private static readonly (string Type, string Schema)[] Schemas =
    [
        ("AVRO", """
            {"type":"record","name":"Order","namespace":"fuzz","aliases":["Old"],"fields":[
              {"name":"id","type":"string"},
              {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
              {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"],"default":"A"}},
              {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
              {"name":"attrs","type":{"type":"map","values":["null","long"]}},
              {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
              {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"next","type":["null","Order"],"default":null}]}
            """),
        ("JSON", """
            {"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["id"],
             "definitions":{"money":{"type":"number","minimum":0,"multipleOf":0.01}},
             "properties":{"id":{"type":"string","pattern":"^o-[0-9]+$","maxLength":20},"amount":{"$ref":"#/definitions/money"},
               "kind":{"enum":["A","B"]},"tags":{"type":"array","items":{"type":"string"},"uniqueItems":true},
               "extra":{"oneOf":[{"type":"integer"},{"type":"string","format":"email"}]}},
             "patternProperties":{"^x-":{"type":"string"}},"additionalProperties":false,
             "if":{"properties":{"kind":{"const":"B"}}},"then":{"required":["tags"]}}
            """),
        ("PROTOBUF", """
            syntax = "proto3";
            package fuzz.v1;
            message Order {
              string id = 1;
              int64 amount = 2;
              enum Kind { KIND_UNSPECIFIED = 0; A = 1; B = 2; }
              Kind kind = 3;
              repeated string tags = 4;
              map<string, int64> attrs = 5;
              oneof payer { string card = 6; string iban = 7; }
              message Line { string sku = 1; int32 quantity = 2; }
              repeated Line lines = 8;
              reserved 9, 10 to 12;
            }
            """),
    ];

    private const string Contract = """
        topic: fuzz-orders
        class: certified
        owner: team-fuzz
        value:
          strategy: TopicNameStrategy
        rules:
          - name: has-id
            expr: has(value.id) && value.id.startsWith('o-')
          - name: amount
            expr: value.amount >= 0.0 && value.amount < 1e9
        privacy:
          - field: id
            action: hash
        onFailure: quarantine
        """;

    private const string ReplayRequest = """
        {"source":"fuzz-orders","target":"fuzz-orders","fromOffset":0,"toOffset":10,"fromTimestamp":"2026-01-01T00:00:00Z","toTimestamp":1900000000000,
         "partitions":[0,1],"rules":["amount"],"resumeFrom":{"0":0,"1":3},"maxRecords":5,"dryRun":false,"id":"fuzz"}
        """;

    private static readonly JsonNode?[] OddValues =
    [
        null, -1, 0, 2147483648, 1e308, -0.5, "", "x", "null", "record", "Order", true, new JsonArray(), new JsonObject(),
        new JsonArray(1, "a", null), new JsonObject { ["type"] = "record" }, new string('z', 3000),
    ];

    [Fact]
    public async Task MutatedSchemasAndContractsGetClientErrorsNeverServerErrors()
    {
        var logs = new CollectingLoggerProvider();
        await using BrokerFixture broker = await BrokerFixture.StartAsync(logging => logging.AddProvider(logs));
        using var registry = new HttpClient { BaseAddress = new Uri(broker.RegistryUrl), Timeout = TimeSpan.FromSeconds(20) };
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}"), Timeout = TimeSpan.FromSeconds(20) };
        var random = new Random(Seed);
        var problems = new List<string>();
        var statuses = new Dictionary<int, int>();
        int schemasTaken = 0;
        bool hung = false;

        async Task<int> Send(HttpClient http, HttpMethod method, string path, string? body, string mediaType)
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = new StringContent(body, Encoding.UTF8);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            }

            try
            {
                using HttpResponseMessage response = await http.SendAsync(request);
                int status = (int)response.StatusCode;
                statuses[status] = statuses.GetValueOrDefault(status) + 1;
                if (status >= 500)
                {
                    problems.Add($"{method} {path} answered {status}: {await response.Content.ReadAsStringAsync()} for {Shorten(body)}");
                }

                return status;
            }
            catch (TaskCanceledException)
            {
                // The first request left unanswered ends the run: a wedged API must not cost CI 20 s per request.
                problems.Add($"{method} {path} not answered within 20 s for {Shorten(body)}");
                hung = true;
                return 0;
            }
        }

        // Each subject starts from a valid schema, so the mutated ones that parse are checked against it for compatibility;
        // the contract's topic has the JSON one, so mutated contracts are checked against a schema too.
        foreach ((string type, string schema) in Schemas)
        {
            Assert.Equal(200, await Send(registry, HttpMethod.Post, $"/subjects/fuzz-{type}/versions", Envelope(type, schema), RegistryJson));
        }

        Assert.Equal(200, await Send(registry, HttpMethod.Post, "/subjects/fuzz-orders-value/versions", Envelope("JSON", Schemas[1].Schema), RegistryJson));
        Assert.Equal(200, await Send(admin, HttpMethod.Post, "/contracts", Contract, "application/yaml"));
        var topics = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>();
        foreach (string topic in new[] { "fuzz-orders", "fuzz-orders.quarantine" })
        {
            Assert.Equal(SharedLog.Protocol.ErrorCode.None, (await topics.CreateAsync(topic, 2, new Dictionary<string, string>(), validateOnly: false, CancellationToken.None)).Error);
        }

        for (int round = 0; round < Rounds && !hung; round++)
        {
            (string type, string schema) = Schemas[random.Next(Schemas.Length)];
            string mutated = type == "PROTOBUF" || random.Next(3) == 0 ? MutateText(schema, random) : MutateJson(schema, random);
            string subject = $"fuzz-{type}";
            string body = Envelope(type, mutated);
            schemasTaken += await Send(registry, HttpMethod.Post, $"/subjects/{subject}/versions", body, RegistryJson) == 200 ? 1 : 0;
            await Send(registry, HttpMethod.Post, $"/compatibility/subjects/{subject}/versions/latest?verbose=true", body, RegistryJson);
            await Send(registry, HttpMethod.Post, $"/subjects/{subject}?normalize={random.Next(2) == 0}", body, RegistryJson);
            await Send(registry, HttpMethod.Get, $"/schemas/ids/{random.Next(-2, 12)}", null, RegistryJson);
            await Send(registry, HttpMethod.Get, $"/subjects/{subject}/versions/{(random.Next(4) == 0 ? "latest" : random.Next(-1, 8).ToString(System.Globalization.CultureInfo.InvariantCulture))}/schema", null, RegistryJson);
            if (random.Next(10) == 0)
            {
                // Now and then the subject takes anything, so odd schemas become versions that later ones are compared with.
                string level = random.Next(2) == 0 ? "NONE" : "FULL_TRANSITIVE";
                await Send(registry, HttpMethod.Put, $"/config/{subject}", $$"""{"compatibility":"{{level}}"}""", RegistryJson);
            }

            // An envelope whose own JSON is mutated, and a contract with mutated text (applied as a dry run or for real).
            await Send(registry, HttpMethod.Post, $"/subjects/{subject}/versions", MutateText(Envelope(type, schema), random), RegistryJson);
            await Send(admin, HttpMethod.Post, random.Next(2) == 0 ? "/contracts?dryRun=true" : "/contracts", MutateText(Contract, random), "application/yaml");

            // A replay request with an odd value or mangled text.
            await Send(admin, HttpMethod.Post, "/replays", random.Next(2) == 0 ? MutateJson(ReplayRequest, random) : MutateText(ReplayRequest, random), "application/json");
        }

        await Send(admin, HttpMethod.Get, "/contracts", null, "application/json");
        problems.AddRange(logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"logged {e.Level} in {e.Category}: {e.Message} {e.Exception}"));
        Assert.True(problems.Count == 0, $"seed {Seed}: {problems.Count} problems:\n" + string.Join("\n", problems.Take(10)));

        // Mutated schemas both taken and refused, or the mutations are not exploring anything.
        string seen = $"mutated schemas registered: {schemasTaken}; answers: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"));
        Assert.True(schemasTaken >= 5 && statuses.GetValueOrDefault(422) + statuses.GetValueOrDefault(400) > 100, seen);
    }

    private static string Envelope(string type, string schema) =>
        new JsonObject { ["schemaType"] = type, ["schema"] = schema }.ToJsonString();

    private static string Shorten(string? body) => body is null ? "(no body)" : body.Length <= 600 ? body : body[..600] + "...";

    /// <summary>One value somewhere in the schema's JSON replaced by an odd one (of another type, empty, huge, nested).</summary>
    private static string MutateJson(string schema, Random random)
    {
        JsonNode root = JsonNode.Parse(schema)!;
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        JsonNode target = nodes[random.Next(nodes.Count)];
        JsonNode? odd = OddValues[random.Next(OddValues.Length)]?.DeepClone();
        switch (target.Parent)
        {
            case JsonObject parent:
                parent[target.GetPropertyName()] = odd;
                break;
            case JsonArray array:
                array[target.GetElementIndex()] = odd;
                break;
            default:
                return odd?.ToJsonString() ?? "null";
        }

        return root.ToJsonString();
    }

    private static void Collect(JsonNode node, List<JsonNode> nodes)
    {
        nodes.Add(node);
        IEnumerable<JsonNode?> children = node switch
        {
            JsonObject o => o.Select(p => p.Value),
            JsonArray a => a,
            _ => [],
        };
        foreach (JsonNode? child in children)
        {
            if (child is not null)
            {
                Collect(child, nodes);
            }
        }
    }

    /// <summary>1-3 character edits: a cut, a repeated stretch, or an inserted token.</summary>
    private static string MutateText(string text, Random random)
    {
        string[] tokens = ["{", "}", "[", "]", "\"", ",", ":", ";", "=", "-1", "999999999999999999999", "null", "message", "oneof", "\\u0000", "\n", "  - ", "#", "*", "&a", "!!binary"];
        var builder = new StringBuilder(text);
        int edits = 1 + random.Next(3);
        for (int e = 0; e < edits && builder.Length > 0; e++)
        {
            int at = random.Next(builder.Length);
            switch (random.Next(3))
            {
                case 0:
                    builder.Remove(at, Math.Min(builder.Length - at, 1 + random.Next(12)));
                    break;
                case 1:
                    string stretch = builder.ToString(at, Math.Min(builder.Length - at, 1 + random.Next(40)));
                    builder.Insert(at, string.Concat(Enumerable.Repeat(stretch, 1 + random.Next(3))));
                    break;
                default:
                    builder.Insert(at, tokens[random.Next(tokens.Length)]);
                    break;
            }
        }

        return builder.ToString();
    }
}
