using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharedLog.IntegrationTests;

/// <summary>
/// The registry's REST surface driven over plain HTTP: the endpoints Confluent's API defines, and
/// hostile bodies (malformed JSON, invalid schemas, huge and deeply nested input) that must get the
/// right error code without harming the broker.
/// </summary>
public class SchemaRegistryHttpTests
{
    private const string Avro = "application/vnd.schemaregistry.v1+json";

    // The client waits up to 30 s for the answer to Expect: 100-continue (default 1 s): past it the body is sent
    // anyway, and a refusal then arrives as a connection reset instead of the 413 the test reads.
    private static HttpClient Http(BrokerFixture broker) =>
        new(new SocketsHttpHandler { Expect100ContinueTimeout = TimeSpan.FromSeconds(30) }) { BaseAddress = new Uri(broker.RegistryUrl), Timeout = TimeSpan.FromSeconds(60) };

    private static StringContent Body(object body, string contentType = Avro) =>
        new(JsonSerializer.Serialize(body), Encoding.UTF8, MediaTypeHeaderValue.Parse(contentType));

    private static async Task<(HttpStatusCode Status, JsonNode? Json)> SendAsync(HttpClient http, HttpMethod method, string path, HttpContent? content = null)
    {
        // Large bodies ask first (Expect: 100-continue), as well-behaved clients do, so a refusal is
        // read as a response rather than as a connection reset while still uploading.
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.ExpectContinue = content?.Headers.ContentLength > 1024 * 1024;
        using HttpResponseMessage response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private static async Task ExpectErrorAsync(HttpClient http, HttpMethod method, string path, HttpContent? content, HttpStatusCode status, int errorCode)
    {
        (HttpStatusCode actual, JsonNode? json) = await SendAsync(http, method, path, content);
        Assert.True(actual == status && (int?)json?["error_code"] == errorCode, $"{method} {path}: got {(int)actual} {json?.ToJsonString()}, expected {(int)status} error_code {errorCode}");
        Assert.False(string.IsNullOrEmpty((string?)json?["message"]));
    }

    private static string Record(string name, params string[] fields) =>
        JsonSerializer.Serialize(new { type = "record", name, fields = fields.Select(f => new { name = f, type = "string" }) });

    [Fact]
    public async Task LargeBodiesWaitForTheBodyBudgetInTurnAndPastItsQueueAreAnswered429()
    {
        // A budget of 1 MiB for bodies over 1 MiB: 1,024 units of 1 KiB (a larger body takes them all), and 16 budgets'
        // worth of requests may wait.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:MaxRequestBodyBytesInFlight", "1048576");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using HttpClient http = Http(broker);
        int port = broker.Host.RegistryPort!.Value;
        static string Head(string subject, int length) =>
            $"POST /subjects/{subject}/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {Avro}\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n";
        static StringContent Padded(string name, int length) =>
            new(JsonSerializer.Serialize(new { schema = Record(name, "id") }).PadRight(length), Encoding.UTF8, MediaTypeHeaderValue.Parse(Avro));

        // A declares 1.5 MB: Kestrel asks for its body ("100 Continue") once the handler reads it, so after it reserved the
        // whole budget, which it holds until it is answered. All but its last bytes are sent (a body that stalls early
        // falls under Kestrel's minimum data rate).
        byte[] bodyA = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { schema = Record("Held", "id") }).PadRight(1_500_000));
        using RawHttp.HeldRequest a = await RawHttp.HeldRequest.OpenAsync(port, Head("held-value", bodyA.Length), deadline.Token);
        Assert.True(await a.WaitForAsync("100 Continue", deadline.Token), a.Received);
        await a.SendAsync(bodyA.AsMemory(0, bodyA.Length - 1000), deadline.Token);

        // A body of at most 1 MiB takes no part of the budget: it is registered while A holds all of it.
        (HttpStatusCode small, JsonNode? smallJson) = await SendAsync(http, HttpMethod.Post, "/subjects/small-value/versions", Padded("Small", 600_000));
        Assert.True(small == HttpStatusCode.OK && smallJson?["id"] is not null, $"{(int)small} {smallJson?.ToJsonString()}");

        // So is a POST with no body at all (neither a length nor chunks; from a review: it reserved 16 MiB and waited).
        string bodiless = await RawHttp.ExchangeAsync(port, $"POST /subjects/empty-value/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {Avro}\r\nConnection: close\r\n\r\n", TimeSpan.FromSeconds(30));
        Assert.Matches("^HTTP/1.1 4(0|2)[0-9] ", bodiless);
        Assert.DoesNotContain("429", bodiless.Split("\r\n")[0], StringComparison.Ordinal);

        // Twenty more declare 2 MB each: sixteen fit the queue and wait unread, four are refused at once.
        var waiting = new List<RawHttp.HeldRequest>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                waiting.Add(await RawHttp.HeldRequest.OpenAsync(port, Head($"queued{i}-value", 2_000_000), deadline.Token));
            }

            await WaitUntilAsync(() =>
            {
                waiting.ForEach(w => w.Poll());
                return waiting.Count(w => w.Received.Contains("error_code", StringComparison.Ordinal)) >= 4;
            }, deadline.Token);
            List<RawHttp.HeldRequest> refused = waiting.Where(w => w.Received.Length > 0).ToList();
            Assert.Equal(4, refused.Count);
            foreach (RawHttp.HeldRequest r in refused)
            {
                Assert.StartsWith("HTTP/1.1 429", r.Received, StringComparison.Ordinal);
                Assert.Contains("\"error_code\":429", r.Received, StringComparison.Ordinal);
                Assert.Contains("retry later", r.Received, StringComparison.Ordinal);
            }

            // A's body completes: it is registered, and the oldest waiting request gets the budget (and only it: each takes it all).
            await a.SendAsync(bodyA.AsMemory(bodyA.Length - 1000), deadline.Token);
            Assert.True(await a.WaitForAsync("\"id\"", deadline.Token), a.Received);
            Assert.StartsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", a.Received, StringComparison.Ordinal);
            List<RawHttp.HeldRequest> queued = waiting.Except(refused).ToList();
            await WaitUntilAsync(() =>
            {
                queued.ForEach(w => w.Poll());
                return queued.Any(w => w.Received.Contains("100 Continue", StringComparison.Ordinal));
            }, deadline.Token);
            Assert.Single(queued, w => w.Received.Length > 0);
        }
        finally
        {
            waiting.ForEach(w => w.Dispose());
        }

        // The requests that went away gave their share back: a 1.2 MB body is read and registered.
        (HttpStatusCode status, JsonNode? json) = await SendAsync(http, HttpMethod.Post, "/subjects/after-value/versions", Padded("After", 1_200_000));
        Assert.True(status == HttpStatusCode.OK && json?["id"] is not null, $"{(int)status} {json?.ToJsonString()}");
    }

    [Fact]
    public async Task ABodyBudgetNearTheLargestNumberIsNotCutToOneUnit()
    {
        // From a review: rounding the budget up to whole KiB overflowed past long.MaxValue - 1023 and left 1 KiB.
        using var budget = new SharedLog.Broker.Http.RequestBodyBudget(Microsoft.Extensions.Options.Options.Create(new SharedLog.Broker.BrokerOptions { MaxRequestBodyBytesInFlight = long.MaxValue }));
        var first = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        first.Request.ContentLength = 4 << 20;
        var second = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        second.Request.ContentLength = 4 << 20;
        Assert.True(await budget.ReserveAsync(first, 16 << 20));
        ValueTask<bool> next = budget.ReserveAsync(second, 16 << 20);
        Assert.True(next.IsCompleted, "a second 4 MiB body waits for the first under a budget of long.MaxValue bytes");
        Assert.True(await next);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(20, cancellationToken);
        }
    }

    [Fact]
    public async Task ProtobufSchemasAreServedAsSerializedDescriptorsOnRequestAndTakenInThatFormToo()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);
        const string proto = "syntax = \"proto3\";\npackage shop;\nmessage Order { string id = 1; int64 cents = 2; }\n";
        (_, JsonNode? registered) = await SendAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schemaType = "PROTOBUF", schema = proto }));
        int id = (int)registered!["id"]!;

        foreach (string path in new[] { $"/schemas/ids/{id}?format=serialized", "/subjects/orders-value/versions/1?format=serialized" })
        {
            (HttpStatusCode status, JsonNode? served) = await SendAsync(http, HttpMethod.Get, path);
            Assert.Equal(HttpStatusCode.OK, status);
            var file = ProtoBuf.Serializer.Deserialize<Google.Protobuf.Reflection.FileDescriptorProto>(Convert.FromBase64String((string)served!["schema"]!).AsSpan());
            Assert.Equal(("shop", "Order"), (file.Package, file.MessageTypes.Single().Name));
            Assert.Equal(["id", "cents"], file.MessageTypes[0].Fields.Select(f => f.Name));

            // The serialized form registers as the same schema elsewhere (what confluent-kafka-python sends).
            (HttpStatusCode again, JsonNode? copy) = await SendAsync(http, HttpMethod.Post, "/subjects/copy-value/versions", Body(new { schemaType = "PROTOBUF", schema = (string)served["schema"]! }));
            Assert.Equal(HttpStatusCode.OK, again);
            Assert.Contains("message Order", (string)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{(int)copy!["id"]!}")).Json!["schema"]!, StringComparison.Ordinal);
        }

        // Without the format, or with another one, the text is served as registered.
        Assert.Equal(proto, (string)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{id}")).Json!["schema"]!);
        Assert.Equal(proto, (string)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{id}?format=default")).Json!["schema"]!);
    }

    [Fact]
    public async Task DataContractRuleSetsAreKeptWithTheVersionAndCarriedOverAsConfluentDoes()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);
        string schema = Record("Payment", "id", "email");
        var rules = new { domainRules = new object[] { new { name = "id-set", kind = "CONDITION", mode = "WRITE", type = "CEL", expr = "message.id != ''", onFailure = "DLQ" } } };

        (_, JsonNode? first) = await SendAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema }));
        (_, JsonNode? withRules) = await SendAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema, ruleSet = rules }));
        Assert.Equal((1, 2), ((int)first!["version"]!, (int)withRules!["version"]!)); // new rules, new version

        JsonNode? latest = (await SendAsync(http, HttpMethod.Get, "/subjects/pay-value/versions/latest")).Json;
        Assert.Equal("id-set", (string)latest!["ruleSet"]!["domainRules"]![0]!["name"]!);
        Assert.Equal("message.id != ''", (string)latest["ruleSet"]!["domainRules"]![0]!["expr"]!);
        Assert.Equal("DLQ", (string)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{(int)withRules["id"]!}")).Json!["ruleSet"]!["domainRules"]![0]!["onFailure"]!);
        Assert.Null((await SendAsync(http, HttpMethod.Get, "/subjects/pay-value/versions/1")).Json!["ruleSet"]);

        // A serializer that sends only the schema keeps the rules: it gets the version that has them.
        (_, JsonNode? again) = await SendAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema }));
        Assert.Equal(2, (int)again!["version"]!);
        (HttpStatusCode found, JsonNode? lookedUp) = await SendAsync(http, HttpMethod.Post, "/subjects/pay-value", Body(new { schema, ruleSet = rules }));
        Assert.Equal((HttpStatusCode.OK, 2), (found, (int)lookedUp!["version"]!));

        // As Confluent: new rules may be sent without the schema; the version takes the latest schema. Not on a lookup,
        // and not for a subject without versions.
        var moreRules = new { domainRules = new object[] { new { name = "email-set", kind = "CONDITION", mode = "WRITE", type = "CEL", expr = "message.email != ''" } } };
        (HttpStatusCode rulesOnly, JsonNode? third) = await SendAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { ruleSet = moreRules }));
        Assert.Equal((HttpStatusCode.OK, 3), (rulesOnly, (int)third!["version"]!));
        JsonNode? version3 = (await SendAsync(http, HttpMethod.Get, "/subjects/pay-value/versions/3")).Json;
        Assert.Equal("email-set", (string)version3!["ruleSet"]!["domainRules"]![0]!["name"]!);
        Assert.Equal((string)latest["schema"]!, (string)version3["schema"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/pay-value", Body(new { ruleSet = moreRules }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/nothing-value/versions", Body(new { ruleSet = moreRules }), HttpStatusCode.UnprocessableEntity, 42201);

        // Malformed rule sets are invalid schemas (422, 42201).
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema, ruleSet = new { domainRules = new object[] { new { kind = "CONDITION", type = "CEL" } } } }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema, ruleSet = new { domainRules = new object[] { new { name = "a", kind = "MAYBE", type = "CEL" } } } }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/pay-value/versions", Body(new { schema, ruleSet = new { domainRules = new object[] { new { name = "a", type = "CEL" }, new { name = "a", type = "CEL" } } } }), HttpStatusCode.UnprocessableEntity, 42201);
    }

    [Fact]
    public async Task AWebPageCannotChangeSchemasOrContractsButMayRead()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient registry = Http(broker);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}"), Timeout = TimeSpan.FromSeconds(60) };
        string schema = Record("Kept", "x");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(registry, HttpMethod.Post, "/subjects/kept/versions", Body(new { schema }))).Status);
        using (HttpResponseMessage applied = await admin.PostAsync(new Uri("/contracts", UriKind.Relative), new StringContent("topic: kept\n", Encoding.UTF8, "application/yaml")))
        {
            Assert.Equal(HttpStatusCode.OK, applied.StatusCode);
        }

        // What a page's script (or form) sends to a broker on the operator's machine: the browser adds Origin.
        async Task<(HttpStatusCode Status, JsonNode? Json)> FromPageAsync(HttpClient http, HttpMethod method, string path, HttpContent? content = null)
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            request.Headers.Add("Origin", "https://attacker.example");
            using HttpResponseMessage response = await http.SendAsync(request);
            string text = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
        }

        foreach ((HttpClient http, HttpMethod method, string path, HttpContent? content) in new (HttpClient, HttpMethod, string, HttpContent?)[]
        {
            (registry, HttpMethod.Delete, "/subjects/kept", null),
            (registry, HttpMethod.Post, "/subjects/other/versions", new StringContent(JsonSerializer.Serialize(new { schema }), Encoding.UTF8, "text/plain")),
            (registry, HttpMethod.Put, "/config", Body(new { compatibility = "NONE" })),
            (admin, HttpMethod.Delete, "/contracts/kept", null),
            (admin, HttpMethod.Post, "/contracts", new StringContent("topic: other\n", Encoding.UTF8, "text/plain")),
        })
        {
            (HttpStatusCode status, JsonNode? json) = await FromPageAsync(http, method, path, content);
            Assert.True(status == HttpStatusCode.Forbidden && (int?)json?["error_code"] == 40301, $"{method} {path} from a page: {(int)status} {json?.ToJsonString()}");
        }

        // Nothing changed, and reads still answer a page.
        Assert.Equal(HttpStatusCode.OK, (await FromPageAsync(registry, HttpMethod.Get, "/subjects/kept/versions")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(registry, HttpMethod.Get, "/subjects/other/versions")).Status);
        Assert.Equal("BACKWARD", (string?)(await SendAsync(registry, HttpMethod.Get, "/config")).Json?["compatibilityLevel"]);
        (HttpStatusCode listed, JsonNode? contracts) = await FromPageAsync(admin, HttpMethod.Get, "/contracts");
        Assert.Equal(HttpStatusCode.OK, listed);
        Assert.Equal(["kept"], contracts!.AsArray().Select(c => (string?)c!["topic"]));

        // What reads answer (names as sent, unescaped) is never sniffed as a page by the browser.
        using (HttpResponseMessage named = await registry.GetAsync("/subjects/%3Cb%3Ex/versions"))
        {
            Assert.False(named.IsSuccessStatusCode);
            Assert.Equal(["nosniff"], named.Headers.GetValues("X-Content-Type-Options"));
        }

        using HttpResponseMessage listedAgain = await admin.GetAsync("/contracts");
        Assert.Equal(["nosniff"], listedAgain.Headers.GetValues("X-Content-Type-Options"));
    }

    [Fact]
    public async Task NullWhereAReferenceOrTagListBelongsIsAnInvalidSchemaNotAServerError()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);
        string schema = Record("Nulls", "x");
        StringContent With(string member) => new("{\"schema\": " + JsonSerializer.Serialize(schema) + ", " + member + "}", System.Text.Encoding.UTF8, Avro);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/nulls/versions", With("\"references\": [null]"), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/nulls/versions", With("\"metadata\": {\"tags\": {\"x\": null}}"), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/nulls", With("\"references\": [null]"), HttpStatusCode.UnprocessableEntity, 42201);

        // Nothing was registered by them, and a well-formed body still is.
        using (HttpResponseMessage missing = await http.GetAsync("/subjects/nulls/versions"))
        {
            // Error messages read as written: Subject 'nulls', not Subject \u0027nulls\u0027.
            Assert.Contains("'nulls'", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(http, HttpMethod.Get, "/subjects/nulls/versions")).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, HttpMethod.Post, "/subjects/nulls/versions", Body(new { schema }))).Status);
    }

    [Fact]
    public async Task ASubjectWithoutLiveVersionsLosesItsOwnSettingsAndIsNotFoundAsConfluent()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);
        string schema = Record("Gone", "x");
        await SendAsync(http, HttpMethod.Post, "/subjects/gone/versions", Body(new { schema }));
        await SendAsync(http, HttpMethod.Put, "/config/gone", Body(new { compatibility = "NONE" }));
        await SendAsync(http, HttpMethod.Put, "/mode/gone", Body(new { mode = "READWRITE" }));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, HttpMethod.Delete, "/subjects/gone")).Status);

        // Soft-deleting the subject removed its own level and mode: a subject made again under the name starts from the global ones.
        await ExpectErrorAsync(http, HttpMethod.Get, "/config/gone", null, HttpStatusCode.NotFound, 40408);
        await ExpectErrorAsync(http, HttpMethod.Get, "/mode/gone", null, HttpStatusCode.NotFound, 40409);
        await ExpectErrorAsync(http, HttpMethod.Delete, "/config/gone", null, HttpStatusCode.NotFound, 40401);
        await ExpectErrorAsync(http, HttpMethod.Delete, "/mode/gone", null, HttpStatusCode.NotFound, 40401);

        // A lookup in a subject whose versions are all soft-deleted: subject not found, unless deleted ones are asked for.
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/gone", Body(new { schema }), HttpStatusCode.NotFound, 40401);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, HttpMethod.Post, "/subjects/gone?deleted=true", Body(new { schema }))).Status);

        // The same when the last live version is deleted on its own.
        await SendAsync(http, HttpMethod.Post, "/subjects/single/versions", Body(new { schema }));
        await SendAsync(http, HttpMethod.Put, "/config/single", Body(new { compatibility = "FULL" }));
        await SendAsync(http, HttpMethod.Delete, "/subjects/single/versions/1");
        await ExpectErrorAsync(http, HttpMethod.Get, "/config/single", null, HttpStatusCode.NotFound, 40408);

        // Under a global READONLY, a subject that does not exist is still "not found" first.
        await SendAsync(http, HttpMethod.Put, "/mode", Body(new { mode = "READONLY" }));
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/never", null, HttpStatusCode.NotFound, 40401);
    }

    [Fact]
    public async Task SubjectsVersionsDeletesConfigAndModeFollowConfluentsApi()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);

        Assert.Equal("{}", (await SendAsync(http, HttpMethod.Get, "/")).Json!.ToJsonString());
        JsonArray types = (JsonArray)(await SendAsync(http, HttpMethod.Get, "/schemas/types")).Json!;
        Assert.Equal(["AVRO", "JSON", "PROTOBUF"], types.Select(t => (string)t!).Order());

        (_, JsonNode? first) = await SendAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schema = Record("Order", "id") }));
        int id1 = (int)first!["id"]!;
        (_, JsonNode? second) = await SendAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schema = Record("Order", "id"), schemaType = "AVRO" }));
        Assert.Equal(id1, (int)second!["id"]!);

        // The same schema under another subject shares the id.
        (_, JsonNode? other) = await SendAsync(http, HttpMethod.Post, "/subjects/orders-copy/versions", Body(new { schema = Record("Order", "id") }));
        Assert.Equal(id1, (int)other!["id"]!);
        JsonArray subjectsOfId = (JsonArray)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{id1}/subjects")).Json!;
        Assert.Equal(["orders-copy", "orders-value"], subjectsOfId.Select(s => (string)s!));

        JsonNode latest = (await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions/latest")).Json!;
        Assert.Equal(1, (int)latest["version"]!);
        Assert.Equal("orders-value", (string)latest["subject"]!);
        Assert.Equal(1, (int)(await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions/-1")).Json!["version"]!);
        JsonNode raw = (await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions/1/schema")).Json!;
        Assert.Equal("Order", (string)raw["name"]!);

        // Lookup by content.
        JsonNode found = (await SendAsync(http, HttpMethod.Post, "/subjects/orders-value", Body(new { schema = Record("Order", "id") }))).Json!;
        Assert.Equal(id1, (int)found["id"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/orders-value", Body(new { schema = Record("Order", "other") }), HttpStatusCode.NotFound, 40403);

        // Compatibility endpoint, verbose, against latest and against the subject's level.
        JsonNode verdict = (await SendAsync(http, HttpMethod.Post, "/compatibility/subjects/orders-value/versions/latest?verbose=true", Body(new { schema = Record("Order", "id", "extra") }))).Json!;
        Assert.False((bool)verdict["is_compatible"]!);
        Assert.Contains("extra", verdict["messages"]!.ToJsonString(), StringComparison.Ordinal);
        JsonNode ok = (await SendAsync(http, HttpMethod.Post, "/compatibility/subjects/orders-value/versions", Body(new { schema = Record("Order") }))).Json!;
        Assert.True((bool)ok["is_compatible"]!);

        // As Confluent: a numbered version that is not there is 40402, whether or not the subject is; latest of no subject is compatible.
        await ExpectErrorAsync(http, HttpMethod.Post, "/compatibility/subjects/orders-value/versions/9", Body(new { schema = Record("Order") }), HttpStatusCode.NotFound, 40402);
        await ExpectErrorAsync(http, HttpMethod.Post, "/compatibility/subjects/nobody-value/versions/1", Body(new { schema = Record("Order") }), HttpStatusCode.NotFound, 40402);
        await ExpectErrorAsync(http, HttpMethod.Post, "/compatibility/subjects/nobody-value/versions/one", Body(new { schema = Record("Order") }), HttpStatusCode.UnprocessableEntity, 42202);
        Assert.True((bool)(await SendAsync(http, HttpMethod.Post, "/compatibility/subjects/nobody-value/versions/latest", Body(new { schema = Record("Order") }))).Json!["is_compatible"]!);

        // Config: global and per subject, defaultToGlobal, delete.
        Assert.Equal("BACKWARD", (string)(await SendAsync(http, HttpMethod.Get, "/config")).Json!["compatibilityLevel"]!);
        await ExpectErrorAsync(http, HttpMethod.Get, "/config/orders-value", null, HttpStatusCode.NotFound, 40408);
        Assert.Equal("BACKWARD", (string)(await SendAsync(http, HttpMethod.Get, "/config/orders-value?defaultToGlobal=true")).Json!["compatibilityLevel"]!);
        Assert.Equal("FULL_TRANSITIVE", (string)(await SendAsync(http, HttpMethod.Put, "/config/orders-value", Body(new { compatibility = "FULL_TRANSITIVE" }))).Json!["compatibility"]!);
        Assert.Equal("FULL_TRANSITIVE", (string)(await SendAsync(http, HttpMethod.Get, "/config/orders-value")).Json!["compatibilityLevel"]!);
        Assert.Equal("FULL_TRANSITIVE", (string)(await SendAsync(http, HttpMethod.Delete, "/config/orders-value")).Json!["compatibilityLevel"]!);
        await ExpectErrorAsync(http, HttpMethod.Put, "/config", Body(new { compatibility = "SIDEWAYS" }), HttpStatusCode.UnprocessableEntity, 42203);

        // Mode: READONLY refuses registrations; bad modes are refused.
        Assert.Equal("READWRITE", (string)(await SendAsync(http, HttpMethod.Get, "/mode")).Json!["mode"]!);
        Assert.Equal("READONLY", (string)(await SendAsync(http, HttpMethod.Put, "/mode/orders-value", Body(new { mode = "READONLY" }))).Json!["mode"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schema = Record("Order") }), HttpStatusCode.UnprocessableEntity, 42205);
        Assert.Equal("READONLY", (string)(await SendAsync(http, HttpMethod.Delete, "/mode/orders-value")).Json!["mode"]!);
        await ExpectErrorAsync(http, HttpMethod.Put, "/mode", Body(new { mode = "SOMETIMES" }), HttpStatusCode.UnprocessableEntity, 42204);

        // READONLY_OVERRIDE, set registry-wide, holds for a subject whatever its own mode.
        Assert.Equal("READWRITE", (string)(await SendAsync(http, HttpMethod.Put, "/mode/orders-value", Body(new { mode = "READWRITE" }))).Json!["mode"]!);
        Assert.Equal("READONLY_OVERRIDE", (string)(await SendAsync(http, HttpMethod.Put, "/mode", Body(new { mode = "READONLY_OVERRIDE" }))).Json!["mode"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schema = Record("Order") }), HttpStatusCode.UnprocessableEntity, 42205);
        Assert.Equal("READONLY_OVERRIDE", (string)(await SendAsync(http, HttpMethod.Delete, "/mode")).Json!["mode"]!);
        Assert.Equal("READWRITE", (string)(await SendAsync(http, HttpMethod.Delete, "/mode/orders-value")).Json!["mode"]!);

        // Soft delete hides a version; permanent delete needs the soft delete first.
        await SendAsync(http, HttpMethod.Post, "/subjects/orders-value/versions", Body(new { schema = Record("Order") }));
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/orders-value/versions/2?permanent=true", null, HttpStatusCode.NotFound, 40407);
        Assert.Equal(2, (int)(await SendAsync(http, HttpMethod.Delete, "/subjects/orders-value/versions/2")).Json!);
        Assert.Equal([1], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions")).Json!).Select(v => (int)v!));
        Assert.Equal([1, 2], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions?deleted=true")).Json!).Select(v => (int)v!));
        Assert.Equal([2], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions?deletedOnly=true")).Json!).Select(v => (int)v!));
        Assert.Equal([2], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects/orders-value/versions?deleted=true&offset=1&limit=5")).Json!).Select(v => (int)v!));
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/orders-value/versions/2", null, HttpStatusCode.NotFound, 40402);
        Assert.Equal(2, (int)(await SendAsync(http, HttpMethod.Delete, "/subjects/orders-value/versions/2?permanent=true")).Json!);

        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/orders-copy?permanent=true", null, HttpStatusCode.NotFound, 40405);
        Assert.Equal([1], ((JsonArray)(await SendAsync(http, HttpMethod.Delete, "/subjects/orders-copy")).Json!).Select(v => (int)v!));
        Assert.DoesNotContain("orders-copy", ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects")).Json!).Select(s => (string)s!));
        Assert.Contains("orders-copy", ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects?deleted=true")).Json!).Select(s => (string)s!));
        Assert.Equal(["orders-copy"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects?deletedOnly=true")).Json!).Select(s => (string)s!));
        Assert.Equal(["orders-copy"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects?deleted=true&limit=1")).Json!).Select(s => (string)s!));
        Assert.Equal(["orders-value"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects?deleted=true&offset=1&limit=-1")).Json!).Select(s => (string)s!));
        Assert.Equal([1], ((JsonArray)(await SendAsync(http, HttpMethod.Delete, "/subjects/orders-copy?permanent=true")).Json!).Select(v => (int)v!));
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/orders-copy/versions", null, HttpStatusCode.NotFound, 40401);

        // The id stays reachable while orders-value still uses it.
        Assert.Equal("Order", (string)JsonNode.Parse((string)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{id1}")).Json!["schema"]!)!["name"]!);
        Assert.Equal(["."], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/contexts")).Json!).Select(c => (string)c!));
    }

    [Fact]
    public async Task ReferencesResolveAndProtectWhatTheyReference()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);

        string address = JsonSerializer.Serialize(new { type = "record", name = "Address", @namespace = "shop", fields = new[] { new { name = "city", type = "string" } } });
        (_, JsonNode? addressId) = await SendAsync(http, HttpMethod.Post, "/subjects/address/versions", Body(new { schema = address }));
        string customer = JsonSerializer.Serialize(new { type = "record", name = "Customer", @namespace = "shop", fields = new object[] { new { name = "name", type = "string" }, new { name = "home", type = "shop.Address" } } });
        var references = new[] { new { name = "shop.Address", subject = "address", version = 1 } };
        (HttpStatusCode status, JsonNode? customerId) = await SendAsync(http, HttpMethod.Post, "/subjects/customer/versions", Body(new { schema = customer, references }));
        Assert.True(status == HttpStatusCode.OK, customerId?.ToJsonString());

        JsonNode byId = (await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{(int)customerId!["id"]!}")).Json!;
        Assert.Equal("address", (string)byId["references"]![0]!["subject"]!);
        Assert.Equal([(int)customerId["id"]!], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects/address/versions/1/referencedby")).Json!).Select(i => (int)i!));

        // A referenced version cannot be deleted; an unknown reference is an invalid schema.
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/address/versions/1", null, HttpStatusCode.UnprocessableEntity, 42206);
        var missing = new[] { new { name = "shop.Address", subject = "nowhere", version = 1 } };
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/customer2/versions", Body(new { schema = customer, references = missing }), HttpStatusCode.UnprocessableEntity, 42201);
        Assert.NotNull(addressId);
    }

    [Fact]
    public async Task EdgeCasesOfRegisteringCheckingAndDeletingFollowConfluent()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);

        // "latest" of a subject with no versions is compatible with anything (a CI check before the first registration).
        JsonNode? fresh = (await SendAsync(http, HttpMethod.Post, "/compatibility/subjects/new-subject/versions/latest", Body(new { schema = Record("A", "x") }))).Json;
        Assert.True((bool)fresh!["is_compatible"]!);

        // verbose: a schema that does not parse is incompatible, with the reason, rather than an error.
        (HttpStatusCode verboseStatus, JsonNode? verbose) = await SendAsync(http, HttpMethod.Post, "/compatibility/subjects/new-subject/versions/latest?verbose=true", Body(new { schema = "{bad" }));
        Assert.Equal(HttpStatusCode.OK, verboseStatus);
        Assert.False((bool)verbose!["is_compatible"]!);
        Assert.NotEmpty((JsonArray)verbose["messages"]!);

        // A schema already under a READONLY subject is answered with its id, as serializers re-register on start.
        int id = (int)(await SendAsync(http, HttpMethod.Post, "/subjects/frozen/versions", Body(new { schema = Record("F", "x") }))).Json!["id"]!;
        await SendAsync(http, HttpMethod.Put, "/mode/frozen", Body(new { mode = "READONLY" }));
        Assert.Equal(id, (int)(await SendAsync(http, HttpMethod.Post, "/subjects/frozen/versions", Body(new { schema = Record("F", "x") }))).Json!["id"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/frozen/versions", Body(new { schema = Record("F", "x", "y") }), HttpStatusCode.UnprocessableEntity, 42205);

        // Outside IMPORT mode a version may be given only as the next one (one near int.MaxValue would block the subject
        // for good), and an id of -1 is no id, as Confluent: an invalid schema (42201), after the compatibility check.
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/versioned/versions", Body(new { schema = Record("V", "x"), version = int.MaxValue }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/versioned/versions", Body(new { schema = Record("V", "x"), id = 5 }), HttpStatusCode.UnprocessableEntity, 42205);
        Assert.Equal(1, (int)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{(int)(await SendAsync(http, HttpMethod.Post, "/subjects/versioned/versions", Body(new { schema = Record("V", "x"), version = 1, id = -1 }))).Json!["id"]!}/versions")).Json![0]!["version"]!);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/versioned/versions", Body(new { schema = Record("V", "x", "y"), version = 5 }), HttpStatusCode.Conflict, 409);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/versioned/versions", Body(new { schema = Record("V"), version = 5 }), HttpStatusCode.UnprocessableEntity, 42201);

        // Soft-deleting a soft-deleted version says so.
        await SendAsync(http, HttpMethod.Delete, "/subjects/versioned/versions/1");
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/versioned/versions/1", null, HttpStatusCode.NotFound, 40406);

        // A reference to "latest" (-1) is stored as the version it names, which is then protected from deletion.
        string address = JsonSerializer.Serialize(new { type = "record", name = "Address", fields = new[] { new { name = "city", type = "string" } } });
        await SendAsync(http, HttpMethod.Post, "/subjects/address/versions", Body(new { schema = address }));
        string customer = JsonSerializer.Serialize(new { type = "record", name = "Customer", fields = new object[] { new { name = "home", type = "Address" } } });
        JsonNode registered = (await SendAsync(http, HttpMethod.Post, "/subjects/customer/versions", Body(new { schema = customer, references = new[] { new { name = "Address", subject = "address", version = -1 } } }))).Json!;
        Assert.Equal(1, (int)(await SendAsync(http, HttpMethod.Get, $"/schemas/ids/{(int)registered["id"]!}")).Json!["references"]![0]!["version"]!);
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects/address/versions/1", null, HttpStatusCode.UnprocessableEntity, 42206);
    }

    [Fact]
    public async Task ReferencesReachingOneSchemaManyTimesOverResolveOnce()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);

        // Each level refers to the level below 100 times under different names: 100^4 paths, 5 distinct schemas.
        await SendAsync(http, HttpMethod.Post, "/subjects/level0/versions", Body(new { schema = JsonSerializer.Serialize(new { type = "record", name = "L0", fields = new[] { new { name = "x", type = "string" } } }) }));
        for (int level = 1; level <= 4; level++)
        {
            var references = Enumerable.Range(0, 100).Select(i => new { name = $"L{level - 1}-{i}", subject = $"level{level - 1}", version = 1 }).ToArray();
            string schema = JsonSerializer.Serialize(new { type = "record", name = $"L{level}", fields = new object[] { new { name = "below", type = $"L{level - 1}" } } });
            (HttpStatusCode status, JsonNode? answer) = await SendAsync(http, HttpMethod.Post, $"/subjects/level{level}/versions", Body(new { schema, references }));
            Assert.True(status == HttpStatusCode.OK, answer?.ToJsonString());
        }

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, HttpMethod.Get, "/subjects")).Status);
    }

    [Fact]
    public async Task HostileRequestsGetClearErrorsAndTheBrokerKeepsServing()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);

        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", new StringContent("{\"schema\": ", Encoding.UTF8, Avro), HttpStatusCode.BadRequest, 400);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schema = "{\"type\": \"recrod\"}" }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schema = "not json at all" }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schema = "{}", schemaType = "XML" }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schemaType = "AVRO" }), HttpStatusCode.UnprocessableEntity, 42201);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schema = "\"string\"" }, "text/plain"), HttpStatusCode.UnsupportedMediaType, 415);
        // As Confluent, the version is read first: malformed is 42202 whether or not the subject exists.
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/versions/zero", null, HttpStatusCode.UnprocessableEntity, 42202);
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/versions/1", null, HttpStatusCode.NotFound, 40401);
        await SendAsync(http, HttpMethod.Post, "/subjects/s/versions", Body(new { schema = "\"string\"" }));
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/versions/zero", null, HttpStatusCode.UnprocessableEntity, 42202);
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/versions/0", null, HttpStatusCode.UnprocessableEntity, 42202);
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/versions/7", null, HttpStatusCode.NotFound, 40402);
        await ExpectErrorAsync(http, HttpMethod.Get, "/schemas/ids/999999", null, HttpStatusCode.NotFound, 40403);
        await ExpectErrorAsync(http, HttpMethod.Get, "/schemas/ids/abc", null, HttpStatusCode.NotFound, 40403);
        await ExpectErrorAsync(http, HttpMethod.Get, "/no/such/path", null, HttpStatusCode.NotFound, 404);
        await ExpectErrorAsync(http, HttpMethod.Put, "/subjects/s/versions", Body(new { schema = "\"string\"" }), HttpStatusCode.MethodNotAllowed, 405);
        await ExpectErrorAsync(http, HttpMethod.Post, "/schemas/ids/1", Body(new { schema = "\"string\"" }), HttpStatusCode.MethodNotAllowed, 405);
        await ExpectErrorAsync(http, HttpMethod.Delete, "/subjects", null, HttpStatusCode.MethodNotAllowed, 405);
        await ExpectErrorAsync(http, HttpMethod.Get, "/subjects/s/metadata?key=owner&key=tier&value=x", null, HttpStatusCode.BadRequest, 400);

        // Deep nesting inside the schema text (Avro arrays of arrays) and in the body itself.
        string deepSchema = string.Concat(Enumerable.Repeat("{\"type\":\"array\",\"items\":", 5000)) + "\"int\"" + new string('}', 5000);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/deep/versions", Body(new { schema = deepSchema }), HttpStatusCode.UnprocessableEntity, 42201);
        string deepBody = "{\"schema\":\"x\",\"metadata\":" + string.Concat(Enumerable.Repeat("{\"a\":", 5000)) + "1" + new string('}', 5001);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/deep/versions", new StringContent(deepBody, Encoding.UTF8, Avro), HttpStatusCode.BadRequest, 400);

        // A schema over the size limit, and a body over the body limit.
        string hugeSchema = "\"" + new string('x', 2 * 1024 * 1024) + "\"";
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/huge/versions", Body(new { schema = hugeSchema }), HttpStatusCode.UnprocessableEntity, 42201);
        var hugeBody = new ByteArrayContent(new byte[17 * 1024 * 1024]);
        hugeBody.Headers.ContentType = MediaTypeHeaderValue.Parse(Avro);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/huge/versions", hugeBody, HttpStatusCode.RequestEntityTooLarge, 413);

        // An escaped unpaired surrogate ("\ud800") is valid JSON to the reader, which throws only when the string is taken:
        // in the body's ruleSet (a 500 before), in a JSON Schema's property name, enum or description, and in an Avro property.
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/lone/versions", new StringContent("{\"schema\":\"\\\"int\\\"\",\"ruleSet\":{\"\\ud800\":1}}", Encoding.UTF8, Avro), HttpStatusCode.BadRequest, 400);
        await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/lone/versions", new StringContent("{\"schema\":\"\\\"int\\\"\",\"ruleSet\":{\"domainRules\":[{\"name\":\"\\ud800\"}]}}", Encoding.UTF8, Avro), HttpStatusCode.BadRequest, 400);
        foreach ((string type, string schema) in (IEnumerable<(string, string)>)[
            ("JSON", "{\"type\":\"object\",\"properties\":{\"\\ud800\":{\"type\":\"string\"}}}"),
            ("JSON", "{\"enum\":[\"\\ud800\"]}"),
            ("JSON", "{\"description\":\"\\ud800\"}"),
            ("AVRO", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"\\ud800\":\"x\"}")])
        {
            await ExpectErrorAsync(http, HttpMethod.Post, "/subjects/lone/versions", Body(new { schema, schemaType = type }), HttpStatusCode.UnprocessableEntity, 42201);
        }

        // Still serving, and nothing half-registered.
        Assert.Equal(["s"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects")).Json!).Select(s => (string)s!));
    }

    [Fact]
    public async Task MalformedPathEscapesAreRefusedAndHeadIsAnsweredAsGet()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using HttpClient http = Http(broker);
        await SendAsync(http, HttpMethod.Post, "/subjects/caf%C3%A9-value/versions", Body(new { schema = "\"string\"" }));
        Assert.Equal(["café-value"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects")).Json!).Select(s => (string)s!));

        // Sent exactly as written (Uri would otherwise escape a stray '%' to "%25" itself).
        foreach (string path in new[] { "/subjects/a%ZZ/versions", "/subjects/a%4/versions", "/subjects/a%/versions", "/subjects/a%FF%FE/versions" })
        {
            var raw = new Uri(new Uri(broker.RegistryUrl).GetLeftPart(UriPartial.Authority) + path, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
            using var request = new HttpRequestMessage(HttpMethod.Post, raw) { Content = Body(new { schema = "\"string\"" }) };
            using HttpResponseMessage response = await http.SendAsync(request);
            JsonNode? json = JsonNode.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest && (int?)json?["error_code"] == 400, $"{path}: {(int)response.StatusCode} {json?.ToJsonString()}");
        }

        Assert.Equal(["café-value"], ((JsonArray)(await SendAsync(http, HttpMethod.Get, "/subjects")).Json!).Select(s => (string)s!));

        // HEAD has GET's status and headers and no body, as Jersey answers it.
        using (HttpResponseMessage head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/subjects/caf%C3%A9-value/versions/1")))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(Avro, head.Content.Headers.ContentType?.MediaType);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }

        using (HttpResponseMessage missing = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/subjects/none/versions/1")))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        // Config and mode too (a review found them still 405: they dispatch on the method themselves).
        foreach (string path in new[] { "/config", "/mode", "/subjects", "/schemas/types" })
        {
            using HttpResponseMessage head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.True(head.StatusCode == HttpStatusCode.OK, $"HEAD {path}: {(int)head.StatusCode}");
        }
    }
}
