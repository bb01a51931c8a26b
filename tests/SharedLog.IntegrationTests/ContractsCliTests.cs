using System.Text.RegularExpressions;
using SharedLog.Broker;

namespace SharedLog.IntegrationTests;

/// <summary>The contracts CLI against a running broker: the exit codes a CI pipeline relies on.</summary>
public class ContractsCliTests
{
    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = await ContractsCli.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public async Task HelpPrintsTheUsageOnStandardOutputAndSucceeds(string help)
    {
        // From a review: help went to stderr with the usage error's exit code 2.
        (int code, string output, string error) = await RunAsync(help);
        Assert.Equal((0, ""), (code, error));
        Assert.Contains("usage: SharedLog.Broker contracts", output, StringComparison.Ordinal);

        // After a command too (a new user's `contracts replay --help` was a usage error, exit 2).
        foreach (string command in help.StartsWith('-') ? new[] { "replay", "apply", "rollback" } : []) // "help" after a command is a file name
        {
            (int afterCommand, string helped, string quiet) = await RunAsync(command, help);
            Assert.Equal((0, ""), (afterCommand, quiet));
            Assert.Contains("usage: SharedLog.Broker contracts", helped, StringComparison.Ordinal);
        }

        (int nothing, string silent, string usage) = await RunAsync();
        Assert.Equal((ContractsCli.Usage, ""), (nothing, silent));
        Assert.Contains("usage: SharedLog.Broker contracts", usage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValidateDiffApplyListAndTheirExitCodes()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string admin = $"http://127.0.0.1:{broker.Host.HttpPort}";
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        string v1 = """{"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}""";
        string breaking = """{"type":"record","name":"Ping","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"}]}""";
        await File.WriteAllTextAsync(Path.Combine(directory, "ping.avsc"), v1);
        await File.WriteAllTextAsync(Path.Combine(directory, "breaking.avsc"), breaking);
        string contract = Path.Combine(directory, "ping.yaml");
        await File.WriteAllTextAsync(contract, "topic: pings\nclass: certified\nvalue:\n  schemaFile: ping.avsc\nrules:\n  - name: has-id\n    expr: size(value.id) > 0\n");
        string bad = Path.Combine(directory, "bad.yaml");
        await File.WriteAllTextAsync(bad, "topic: pings\nclass: certified\nvalue: {}\nrules:\n  - name: broken\n    expr: value.id ==\n");
        string incompatible = Path.Combine(directory, "incompatible.yaml");
        await File.WriteAllTextAsync(incompatible, "topic: pings\nvalue:\n  schemaFile: breaking.avsc\n");

        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", contract)).Code);
        // Invalid UTF-8 is refused as the API refuses it, not read with U+FFFD in its place.
        string latin1 = Path.Combine(directory, "latin1.yaml");
        await File.WriteAllBytesAsync(latin1, [.. "topic: pings\nowner: a"u8, 0xff, .. "b\n"u8]);
        (int latin1Code, _, string latin1Err) = await RunAsync("validate", latin1);
        Assert.Equal(ContractsCli.Invalid, latin1Code);
        Assert.Contains("not UTF-8", latin1Err, StringComparison.Ordinal);
        (int badCode, _, string badErr) = await RunAsync("validate", bad);
        Assert.Equal(ContractsCli.Invalid, badCode);
        Assert.Contains("broken", badErr, StringComparison.Ordinal);

        using (var http = new HttpClient())
        {
            using var body = new StringContent(System.Text.Json.JsonSerializer.Serialize(new { schema = v1 }), System.Text.Encoding.UTF8, "application/vnd.schemaregistry.v1+json");
            (await http.PostAsync(new Uri($"{broker.RegistryUrl}/subjects/pings-value/versions"), body)).EnsureSuccessStatusCode();
        }

        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", contract, "--registry", broker.RegistryUrl)).Code);

        // A subject the registry does not have is new (nothing to be compatible with), but only the registry's own
        // "subject not found" says so: the admin port or a wrong path also answers 404, and must not pass a CI check.
        string fresh = await WriteAsync(Path.Combine(directory, "fresh.yaml"), "topic: fresh-pings\nvalue:\n  schemaFile: breaking.avsc\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", fresh, "--registry", broker.RegistryUrl)).Code);
        (int adminCode, _, string adminErr) = await RunAsync("validate", fresh, "--registry", admin);
        Assert.Equal(ContractsCli.Unreachable, adminCode);
        Assert.Contains("is " + admin + " a schema registry?", adminErr, StringComparison.Ordinal);
        Assert.Equal(ContractsCli.Unreachable, (await RunAsync("validate", fresh, "--registry", broker.RegistryUrl + "/wrong/prefix")).Code);

        // Without a schemaFile there is nothing to hold against the registry: it says so instead of passing silently, once
        // the address answers as a registry (the admin port does not).
        string schemaless = await WriteAsync(Path.Combine(directory, "schemaless.yaml"), "topic: pings\nclass: raw\n");
        (int schemalessCode, string schemalessOut, _) = await RunAsync("validate", schemaless, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Ok, schemalessCode);
        Assert.Contains($"no schemaFile, so nothing was checked against {broker.RegistryUrl}", schemalessOut, StringComparison.Ordinal);
        (int schemalessAdminCode, _, string schemalessAdminErr) = await RunAsync("validate", schemaless, "--registry", admin);
        Assert.Equal(ContractsCli.Unreachable, schemalessAdminCode);
        Assert.Contains("is " + admin + " a schema registry?", schemalessAdminErr, StringComparison.Ordinal);

        // Checked at the contract's level, the one apply gives the subject: dropping a field without a default is
        // BACKWARD-compatible (the subject's level now) but not FULL_TRANSITIVE (a certified contract's).
        string dropped = """{"type":"record","name":"Ping","fields":[]}""";
        await File.WriteAllTextAsync(Path.Combine(directory, "dropped.avsc"), dropped);
        string certifiedDrop = Path.Combine(directory, "certified-drop.yaml");
        await File.WriteAllTextAsync(certifiedDrop, "topic: pings\nclass: certified\nvalue:\n  schemaFile: dropped.avsc\n");
        (int droppedCode, _, string droppedErr) = await RunAsync("validate", certifiedDrop, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, droppedCode);
        Assert.Contains("FULL_TRANSITIVE", droppedErr, StringComparison.Ordinal);
        string backwardDrop = await WriteAsync(Path.Combine(directory, "backward-drop.yaml"), "topic: pings\nclass: raw\ncompatibility: BACKWARD\nvalue:\n  schemaFile: dropped.avsc\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", backwardDrop, "--registry", broker.RegistryUrl)).Code);

        // A subject whose versions have references: they are copied from the registry with what they reference, and the
        // check is made at the contract's level, whatever the subject's level is now (BACKWARD here).
        using (var http = new HttpClient())
        {
            foreach ((string subject, string json) in new[]
            {
                ("unused-ref", System.Text.Json.JsonSerializer.Serialize(new { schema = """{"type":"record","name":"Unused","fields":[]}""" })),
                ("refs-value", System.Text.Json.JsonSerializer.Serialize(new { schema = v1, references = new[] { new { name = "Unused", subject = "unused-ref", version = 1 } } })),
            })
            {
                using var body = new StringContent(json, System.Text.Encoding.UTF8, "application/vnd.schemaregistry.v1+json");
                using HttpResponseMessage registered = await http.PostAsync(new Uri($"{broker.RegistryUrl}/subjects/{subject}/versions"), body);
                Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
            }
        }

        string certifiedRefs = await WriteAsync(Path.Combine(directory, "certified-refs.yaml"), "topic: refs\nclass: certified\nvalue:\n  schemaFile: dropped.avsc\n");
        (int refsCode, _, string refsErr) = await RunAsync("validate", certifiedRefs, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, refsCode);
        Assert.Contains("dropped.avsc is not compatible with subject refs-value at FULL_TRANSITIVE", refsErr, StringComparison.Ordinal);
        string backwardRefs = await WriteAsync(Path.Combine(directory, "backward-refs.yaml"), "topic: refs\nclass: raw\ncompatibility: BACKWARD\nvalue:\n  schemaFile: dropped.avsc\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", backwardRefs, "--registry", broker.RegistryUrl)).Code);

        // Offline, a schema file that is not a schema of its language is invalid.
        await File.WriteAllTextAsync(Path.Combine(directory, "broken.avsc"), """{"type":"recrod"}""");
        string brokenSchema = await WriteAsync(Path.Combine(directory, "broken-schema.yaml"), "topic: pings\nvalue:\n  schemaFile: broken.avsc\n");
        (int brokenCode, _, string brokenErr) = await RunAsync("validate", brokenSchema);
        Assert.Equal(ContractsCli.Invalid, brokenCode);
        Assert.Contains("not a valid AVRO schema", brokenErr, StringComparison.Ordinal);
        // Offline too, a privacy field the schema file does not declare is a typo that would leave the field in clear.
        string misspelt = await WriteAsync(Path.Combine(directory, "misspelt.yaml"), "topic: pings\nvalue:\n  schemaFile: ping.avsc\nprivacy:\n  - field: ident\n    action: hash\n");
        (int misspeltCode, _, string misspeltErr) = await RunAsync("validate", misspelt);
        Assert.Equal(ContractsCli.Invalid, misspeltCode);
        Assert.Contains("privacy[ident]", misspeltErr, StringComparison.Ordinal);
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", await WriteAsync(Path.Combine(directory, "spelt.yaml"), "topic: pings\nvalue:\n  schemaFile: ping.avsc\nprivacy:\n  - field: id\n    action: hash\n"))).Code);
        // Under RecordNameStrategy the subject is the schema file's record name (Avro full name), checked as any other:
        // here against a registry that cannot be reached, and against the subject Ping, registered incompatibly.
        string byRecord = await WriteAsync(Path.Combine(directory, "by-record.yaml"), "topic: pings\nvalue:\n  strategy: RecordNameStrategy\n  schemaFile: breaking.avsc\n");
        Assert.Equal(ContractsCli.Unreachable, (await RunAsync("validate", byRecord, "--registry", "http://127.0.0.1:1")).Code);
        // A file that names no record can never be used under it: refused offline too (it passed without --registry).
        await File.WriteAllTextAsync(Path.Combine(directory, "untitled.json"), """{"type":"object"}""");
        (int untitledCode, _, string untitledErr) = await RunAsync("validate", await WriteAsync(Path.Combine(directory, "untitled.yaml"), "topic: pings\nvalue:\n  strategy: RecordNameStrategy\n  schemaType: JSON\n  schemaFile: untitled.json\n"));
        Assert.Equal(ContractsCli.Invalid, untitledCode);
        Assert.Contains("untitled.json names no record", untitledErr, StringComparison.Ordinal);
        using (var http = new HttpClient())
        {
            using var body = new StringContent(System.Text.Json.JsonSerializer.Serialize(new { schema = v1 }), System.Text.Encoding.UTF8, "application/vnd.schemaregistry.v1+json");
            (await http.PostAsync(new Uri($"{broker.RegistryUrl}/subjects/Ping/versions"), body)).EnsureSuccessStatusCode();
        }

        (int byRecordCode, _, string byRecordErr) = await RunAsync("validate", byRecord, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, byRecordCode);
        Assert.Contains("subject Ping", byRecordErr, StringComparison.Ordinal);
        // A compatible one passes, and is told that apply will not set Ping's level (the broker cannot name the subject).
        (int sameCode, string sameOut, _) = await RunAsync("validate", await WriteAsync(Path.Combine(directory, "same-record.yaml"), "topic: pings\nvalue:\n  strategy: RecordNameStrategy\n  schemaFile: ping.avsc\n"), "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Ok, sameCode);
        Assert.Contains("applying this contract does not set Ping's level", sameOut, StringComparison.Ordinal);

        (int incompatibleCode, _, string incompatibleErr) = await RunAsync("validate", incompatible, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, incompatibleCode);
        Assert.Contains("not compatible", incompatibleErr, StringComparison.Ordinal);

        (int diffCode, string diffOut, _) = await RunAsync("diff", contract, "--url", admin);
        Assert.Equal(ContractsCli.Ok, diffCode);
        Assert.Contains("+ class: certified", diffOut, StringComparison.Ordinal);
        Assert.Contains("registry, once applied: pings-value: FULL_TRANSITIVE", diffOut, StringComparison.Ordinal);
        (int applyCode, string applyOut, _) = await RunAsync("apply", contract, "--url", admin, "--actor", "ci");
        Assert.Equal(ContractsCli.Ok, applyCode);
        Assert.Contains("now version 1", applyOut, StringComparison.Ordinal);
        (int refusedCode, _, string refusedErr) = await RunAsync("apply", bad, "--url", admin);
        Assert.Equal(ContractsCli.Invalid, refusedCode);
        // Each problem once, listed: the API's message, which joins them, printed them twice.
        Assert.StartsWith("refused: the contract is invalid\n  - rules[broken]: ", refusedErr.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Single(Regex.Matches(refusedErr, "rules\\[broken\\]"));
        (int listCode, string listOut, _) = await RunAsync("list", "--url", admin);
        Assert.Equal(ContractsCli.Ok, listCode);
        Assert.Contains("pings", listOut, StringComparison.Ordinal);

        Assert.Equal(ContractsCli.Usage, (await RunAsync("frobnicate")).Code);
        Assert.Equal(ContractsCli.Usage, (await RunAsync("apply")).Code);
        Assert.Equal(ContractsCli.Unreachable, (await RunAsync("list", "--url", "http://127.0.0.1:1")).Code);

        // A misspelt option is a usage error, not a check quietly skipped.
        (int typoCode, _, string typoErr) = await RunAsync("validate", incompatible, "--regsitry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Usage, typoCode);
        Assert.Contains("--regsitry", typoErr, StringComparison.Ordinal);

        // An address that answers, but not with the contracts API (an empty 404 here): a clear message and exit 3, no crash.
        (int strangerCode, _, string strangerErr) = await RunAsync("apply", contract, "--url", admin + "/elsewhere");
        Assert.Equal(ContractsCli.Unreachable, strangerCode);
        Assert.Contains("unexpected answer", strangerErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HistoryRollbackAndDeleteFromTheCommandLine()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string admin = $"http://127.0.0.1:{broker.Host.HttpPort}";
        using var scratch = new ScratchDirectory();
        string first = await WriteAsync(Path.Combine(scratch.Path, "v1.yaml"), "topic: audits.eu\nclass: raw\nowner: team-a\nonFailure: reject\n");
        string second = await WriteAsync(Path.Combine(scratch.Path, "v2.yaml"), "topic: audits.eu\nclass: raw\nowner: team-b\nonFailure: reject\nvalue: {}\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("apply", first, "--url", admin, "--actor", "alice")).Code);
        (int secondCode, string secondOut, string secondErr) = await RunAsync("apply", second, "--url", admin, "--actor", "bob");
        Assert.True(secondCode == ContractsCli.Ok, secondErr);
        Assert.Contains("registry: audits.eu-value: BACKWARD", secondOut, StringComparison.Ordinal); // the raw class's level

        (int rollbackCode, string rollbackOut, string rollbackErr) = await RunAsync("rollback", "audits.eu", "--version", "1", "--url", admin, "--actor", "Carol N\u00fa\u00f1ez \u5c71\u7530");
        Assert.True(rollbackCode == ContractsCli.Ok, rollbackErr);
        Assert.Contains("contract audits.eu is now version 3", rollbackOut, StringComparison.Ordinal);
        Assert.Contains("team-a", rollbackOut, StringComparison.Ordinal);
        // Version 1 names no value subject: the subject version 2 bound follows the registry's global level again.
        Assert.Contains("registry: audits.eu-value: global level", rollbackOut, StringComparison.Ordinal);
        (_, string listOut, _) = await RunAsync("list", "--url", admin);
        Assert.Contains("team-a", listOut, StringComparison.Ordinal);

        (int historyCode, string historyOut, _) = await RunAsync("history", "audits.eu", "--url", admin);
        Assert.Equal(ContractsCli.Ok, historyCode);
        string[] lines = historyOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(4, lines.Length); // the header and three versions
        Assert.Matches(@"^1 apply .* alice$", lines[1]);
        Assert.Matches(@"^2 apply .* bob$", lines[2]);
        // A name outside ASCII reaches the broker as UTF-8 and is recorded as given.
        Assert.Matches(@"^3 rollback +1 .* Carol N\u00fa\u00f1ez \u5c71\u7530$", lines[3]);

        // Refusals: a version the contract never had, a rollback without a version, unknown contracts.
        (int missingVersionCode, _, string missingVersionErr) = await RunAsync("rollback", "audits.eu", "--version", "9", "--url", admin);
        Assert.Equal(ContractsCli.Invalid, missingVersionCode);
        Assert.Contains("9", missingVersionErr, StringComparison.Ordinal);
        foreach (string[] slip in new[]
        {
            new[] { "rollback", "audits.eu", "--url", admin }, ["rollback", "audits.eu", "--version", "one"], ["rollback", "audits.eu", "--version", "0"], ["history"],
            ["delete", "audits.eu", "--version", "1"], ["rollback", "audits.eu", "--version", "1", "--version", "2", "--url", admin],
            ["delete", "audits.eu", "--url", admin, "--actor", "jos\ud800"], ["delete", "audits.eu", "--url", admin, "--actor", "a\r\nX-Other: 1"],
            ["delete", "audits.eu", "--url", admin, "--actor", "a\u2028b"], ["delete", "audits.eu", "--url", admin, "--actor", "\ufffd"],
            ["history", "..", "--url", admin], ["delete", ".", "--url", admin], ["replay", "orders", "--dry-run", "--dry-run", "--url", admin],
        })
        {
            Assert.Equal(ContractsCli.Usage, (await RunAsync(slip)).Code);
        }

        // "--" ends the options: a name that starts with "-" is a name (none such here: the broker says so).
        (int dashedCode, _, string dashedErr) = await RunAsync("history", "--url", admin, "--", "-dashed");
        Assert.Equal(ContractsCli.Invalid, dashedCode);
        Assert.Contains("-dashed", dashedErr, StringComparison.Ordinal);

        (int unknownCode, _, string unknownErr) = await RunAsync("history", "no.such.contract", "--url", admin);
        Assert.Equal(ContractsCli.Invalid, unknownCode);
        Assert.Contains("not found", unknownErr, StringComparison.Ordinal);

        (int deleteCode, string deleteOut, _) = await RunAsync("delete", "audits.eu", "--url", admin, "--actor", "dave");
        Assert.Equal(ContractsCli.Ok, deleteCode);
        Assert.Contains("contract audits.eu deleted (version 4", deleteOut, StringComparison.Ordinal);
        (_, string afterDelete, _) = await RunAsync("list", "--url", admin);
        Assert.DoesNotContain("audits.eu", afterDelete, StringComparison.Ordinal);
        (_, string deletedHistory, _) = await RunAsync("history", "audits.eu", "--url", admin);
        Assert.Matches(@"4 delete .* dave", deletedHistory);
        Assert.Equal(ContractsCli.Invalid, (await RunAsync("delete", "no.such.contract", "--url", admin)).Code);

        // Another server at the address (the registry's port answers 404 for these paths): exit 3, not "not found".
        (int strangerCode, _, string strangerErr) = await RunAsync("history", "audits.eu", "--url", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Unreachable, strangerCode);
        Assert.Contains("not SharedLog's admin API", strangerErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingFilesAndAnUnreadableRegistryVersionAreClearFailuresNotCrashes()
    {
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        using var registry = new System.Net.HttpListener();
        (int missingCode, _, string missingErr) = await RunAsync("validate", Path.Combine(directory, "absent.yaml"));
        Assert.Equal(ContractsCli.Usage, missingCode);
        Assert.Contains("no such file", missingErr, StringComparison.Ordinal);
        Assert.Equal(ContractsCli.Usage, (await RunAsync("apply", Path.Combine(directory, "absent.yaml"), "--url", "http://127.0.0.1:1")).Code);

        // A device has no size the file system tells (the size check sees 0 bytes): read only up to the limit, then refused.
        (int deviceCode, _, string deviceErr) = await RunAsync("validate", "/dev/zero");
        Assert.Equal(ContractsCli.Invalid, deviceCode);
        Assert.Contains("is at most 262144 characters", deviceErr, StringComparison.Ordinal);

        // A FIFO that nothing writes to: its open never returns, so the CLI gives up on it instead of hanging.
        string fifo = Path.Combine(directory, "contract.fifo");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, mkfifo.ExitCode);
        }

        (int fifoCode, _, string fifoErr) = await RunAsync("validate", fifo).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ContractsCli.Invalid, fifoCode);
        Assert.Contains("could not be read within 10 s", fifoErr, StringComparison.Ordinal);

        // The CLI's reader is still waiting in open(): a writer lets it finish, so it does not hold a pool thread for the rest of the run.
        await Task.Run(() => new FileStream(fifo, FileMode.Open, FileAccess.Write).Dispose()).WaitAsync(TimeSpan.FromSeconds(30));

        // A schema file the contract names but that is not there makes the contract invalid, and says which.
        string noSchema = await WriteAsync(Path.Combine(directory, "no-schema.yaml"), "topic: pings\nvalue:\n  schemaFile: gone.avsc\n");
        (int noSchemaCode, _, string noSchemaErr) = await RunAsync("validate", noSchema);
        Assert.Equal(ContractsCli.Invalid, noSchemaCode);
        Assert.Contains("schema file gone.avsc not found", noSchemaErr, StringComparison.Ordinal);

        // A registry holding a version this build cannot parse (another registry's dialect, here a broken Protobuf):
        // compatibility with it is not verified (exit 1), where the exception used to escape the CLI.
        await File.WriteAllTextAsync(Path.Combine(directory, "ping.avsc"), """{"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}""");
        string contract = await WriteAsync(Path.Combine(directory, "foreign.yaml"), "topic: foreign\nvalue:\n  schemaFile: ping.avsc\n");
        string prefix = $"http://127.0.0.1:{BrokerFixture.FreeLoopbackPort()}/";
        registry.Prefixes.Add(prefix);
        registry.Start();
        Task serving = ServeAsync(registry, new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["/subjects/foreign-value/versions"] = "[1]",
            ["/subjects/foreign-value/versions/1"] = """{"subject":"foreign-value","version":1,"id":7,"schemaType":"PROTOBUF","schema":"syntax = \"proto9\"; message {"}""",
        });
        (int foreignCode, _, string foreignErr) = await RunAsync("validate", contract, "--registry", prefix);
        Assert.Equal(ContractsCli.Invalid, foreignCode);
        Assert.Contains("version 1 of subject 'foreign-value' (or a schema it references) cannot be read here", foreignErr, StringComparison.Ordinal);
        Assert.Contains("whether ping.avsc is compatible with subject foreign-value at BACKWARD could not be verified", foreignErr, StringComparison.Ordinal);
        registry.Stop();
        await serving;
    }

    [Fact]
    public async Task CommandLineSlipsAreUsageErrorsAndAServerThatIsNotSharedLogIsUnreachable()
    {
        // From an end-to-end review: an address without its scheme crashed the CLI (exit 134 and a stack trace), validate
        // passed a file the broker then refused as too large (it counted characters, the broker bytes), apply against a
        // registry port answered "invalid" (1) for a server that is not SharedLog's admin API at all (3).
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        using var other = new System.Net.HttpListener();
        string contract = await WriteAsync(Path.Combine(directory, "pings.yaml"), "topic: pings\nclass: raw\n");
        foreach (string[] args in new[]
        {
            new[] { "list", "--url", "127.0.0.1:9644" }, ["diff", contract, "--url", "localhost:9644"], ["apply", contract, "--url", ""],
            ["validate", contract, "--registry", "notaurl"], ["validate", contract, "--registry", "ftp://127.0.0.1:8081"],
        })
        {
            (int code, _, string err) = await RunAsync(args);
            Assert.True(code == ContractsCli.Usage, $"{string.Join(' ', args)}: exit {code}, {err}");
            Assert.Contains("must be an http:// or https:// address", err, StringComparison.Ordinal);
        }

        Assert.Equal(ContractsCli.Usage, (await RunAsync("list", contract, "--url", "http://127.0.0.1:1")).Code);

        // Without a schemaFile nothing needs the registry, but one that cannot be reached still fails the pipeline that named it.
        (int plainCode, _, string plainErr) = await RunAsync("validate", contract, "--registry", "http://127.0.0.1:1");
        Assert.Equal(ContractsCli.Unreachable, plainCode);
        Assert.Contains("cannot reach http://127.0.0.1:1", plainErr, StringComparison.Ordinal);

        string dangling = Path.Combine(directory, "dangling.yaml");
        File.CreateSymbolicLink(dangling, Path.Combine(directory, "nothing-here.yaml"));
        (int danglingCode, _, string danglingErr) = await RunAsync("validate", dangling);
        Assert.Equal(ContractsCli.Usage, danglingCode);
        Assert.Contains("no such file", danglingErr, StringComparison.Ordinal);

        // 100,000 three-byte characters: within the parser's 262,144 characters, over the broker's 262,144 bytes.
        string large = await WriteAsync(Path.Combine(directory, "large.yaml"), $"topic: pings\nclass: raw\ndescription: {new string('\u20ac', 100_000)}\n");
        (int largeCode, _, string largeErr) = await RunAsync("validate", large);
        Assert.Equal(ContractsCli.Invalid, largeCode);
        Assert.Contains("at most 262144 bytes; this one is 300", largeErr, StringComparison.Ordinal);

        string prefix = $"http://127.0.0.1:{BrokerFixture.FreeLoopbackPort()}/";
        other.Prefixes.Add(prefix);
        other.Start();
        Task serving = ServeAsync(other, new Dictionary<string, string>(StringComparer.Ordinal));
        foreach (string[] command in new[] { new[] { "apply", contract }, ["diff", contract], ["replay", "pings"], ["list"] })
        {
            (int code, _, string err) = await RunAsync([.. command, "--url", prefix]);
            Assert.True(code == ContractsCli.Unreachable, $"{command[0]}: exit {code}, {err}");
            Assert.Contains("not SharedLog's admin API", err, StringComparison.Ordinal);
        }

        other.Stop();
        await serving;
    }

    [Fact]
    public async Task ASchemaFileWithReferencesIsReadWithTheRegisteredSchemasItRefersTo()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        const string Customer = """{"type":"record","name":"Customer","namespace":"it.refs","fields":[{"name":"name","type":"string"}]}""";
        const string Order = """{"type":"record","name":"Order","namespace":"it.refs","fields":[{"name":"id","type":"string"},{"name":"customer","type":"it.refs.Customer"}]}""";
        const string OrderWithQuantity = """{"type":"record","name":"Order","namespace":"it.refs","fields":[{"name":"id","type":"string"},{"name":"customer","type":"it.refs.Customer"},{"name":"quantity","type":"int"}]}""";
        await File.WriteAllTextAsync(Path.Combine(directory, "order.avsc"), Order);
        await File.WriteAllTextAsync(Path.Combine(directory, "order-quantity.avsc"), OrderWithQuantity);
        const string References = "  references:\n    - name: it.refs.Customer\n      subject: customers-value\n      version: 1\n";
        string contract = await WriteAsync(Path.Combine(directory, "orders.yaml"), $"topic: orders\nclass: certified\nvalue:\n  schemaFile: order.avsc\n{References}privacy:\n  - field: customer.name\n    action: hash\n");
        string breaking = await WriteAsync(Path.Combine(directory, "breaking.yaml"), $"topic: orders\nclass: certified\nvalue:\n  schemaFile: order-quantity.avsc\n{References}");

        // Offline the referenced type is nowhere to be read: said, not failed and not passed as checked.
        (int offlineCode, string offlineOut, string offlineErr) = await RunAsync("validate", contract);
        Assert.True(offlineCode == ContractsCli.Ok, offlineErr);
        Assert.Contains("refers to registered schemas (customers-value version 1), which only --registry resolves: not checked offline", offlineOut, StringComparison.Ordinal);

        // The registry does not have the referenced version yet.
        (int missingCode, _, string missingErr) = await RunAsync("validate", contract, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, missingCode);
        Assert.Contains("reference 'it.refs.Customer' names subject 'customers-value' version 1, which the registry does not have", missingErr, StringComparison.Ordinal);

        using var http = new HttpClient();
        async Task RegisterAsync(string subject, object request)
        {
            using var body = new StringContent(System.Text.Json.JsonSerializer.Serialize(request), System.Text.Encoding.UTF8, "application/vnd.schemaregistry.v1+json");
            using HttpResponseMessage registered = await http.PostAsync(new Uri($"{broker.RegistryUrl}/subjects/{subject}/versions"), body);
            Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
        }

        await RegisterAsync("customers-value", new { schema = Customer });

        // Without a schemaFile, --registry checks the privacy rules against the registered versions, as apply will (a
        // misspelt field passed validate and was then refused by apply).
        string misspelt = await WriteAsync(Path.Combine(directory, "customers.yaml"), "topic: customers\nvalue: {}\nprivacy:\n  - field: nmae\n    action: hash\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", misspelt)).Code); // offline there is nothing to hold it against
        (int misspeltCode, _, string misspeltErr) = await RunAsync("validate", misspelt, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, misspeltCode);
        Assert.Contains("privacy[nmae]: no value schema the contract admits declares this field", misspeltErr, StringComparison.Ordinal);

        // So are the names its rules read: a misspelt one would make every record fail the contract (no such key).
        string misread = await WriteAsync(Path.Combine(directory, "customers-rule.yaml"), "topic: customers\nvalue: {}\nrules:\n  - name: named\n    expr: value.nmae != ''\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", misread)).Code);
        // validate --registry, then apply: both exit with expectedCode; their standard errors.
        async Task<(string Validated, string Applied)> ValidateAndApplyAsync(string file, int expectedCode)
        {
            (int validateCode, _, string validated) = await RunAsync("validate", file, "--registry", broker.RegistryUrl);
            Assert.True(validateCode == expectedCode, validated);
            (int applyCode, _, string applied) = await RunAsync("apply", file, "--url", $"http://127.0.0.1:{broker.Host.HttpPort}");
            Assert.True(applyCode == expectedCode, applied);
            return (validated, applied);
        }

        (string misreadErr, string misreadApplyErr) = await ValidateAndApplyAsync(misread, ContractsCli.Invalid);
        Assert.Contains("rules[named]: reads value.nmae, but no value schema the contract admits declares nmae", misreadErr, StringComparison.Ordinal);
        Assert.Contains("rules[named]: reads value.nmae", misreadApplyErr, StringComparison.Ordinal);
        string guarded = await WriteAsync(Path.Combine(directory, "customers-guarded.yaml"), "topic: customers\nvalue: {}\nrules:\n  - name: named\n    expr: value.name != '' && (!has(value.nickname) || value.nickname != '')\n");
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", guarded, "--registry", broker.RegistryUrl)).Code);

        // A contract whose subject has no version it admits refuses every record for now: taken, with a warning (from a
        // user's review: the docs' `versions: ">=3"` example applied silently and then refused every record).
        string ahead = await WriteAsync(Path.Combine(directory, "customers-ahead.yaml"), "topic: customers\nvalue:\n  versions: \">=3\"\n");
        (string aheadErr, string aheadApplyErr) = await ValidateAndApplyAsync(ahead, ContractsCli.Ok);
        Assert.Contains("warning: value: subject customers-value has no registered version the contract admits (versions >=3; registered: 1), so every record with a value fails the contract and is counted as failing (observe mode stores it) until one is", aheadErr, StringComparison.Ordinal);
        Assert.Contains("warning: value: subject customers-value has no registered version the contract admits (versions >=3; registered: 1)", aheadApplyErr, StringComparison.Ordinal);
        // The warning follows the contract's action (from a review: "refused" under flag and observe, which store every
        // record), and says that its privacy paths and rule names wait for the schema (from a user's review: a misspelt
        // path applied before the schema left the field in clear without a word).
        string before = await WriteAsync(Path.Combine(directory, "later.yaml"), "topic: later\nonFailure: observe\nvalue: {}\nprivacy:\n  - field: stret\n    action: redact\n");
        (int beforeCode, _, string beforeErr) = await RunAsync("apply", before, "--url", $"http://127.0.0.1:{broker.Host.HttpPort}");
        Assert.Equal(ContractsCli.Ok, beforeCode);
        Assert.Contains("warning: value: subject later-value has no schema registered, so every record with a value fails the contract and is counted as failing (observe mode stores it) until one is; its privacy paths and the names its rules read are checked only then", beforeErr, StringComparison.Ordinal);
        (int laterValidateCode, string laterValidated, _) = await RunAsync("validate", before, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Ok, laterValidateCode);
        Assert.Contains("has no schema the contract admits, so nothing was checked against it (not the names the rules and privacy rules use either)", laterValidated, StringComparison.Ordinal);
        string pinned = await WriteAsync(Path.Combine(directory, "pinned.yaml"), "topic: pinned\nonFailure: quarantine\nvalue:\n  subject: customers-value\n  versions: 3\n");
        Assert.Contains("(versions 3; registered: 1), so every record with a value fails the contract and is quarantined until one is", (await RunAsync("validate", pinned, "--registry", broker.RegistryUrl)).Err, StringComparison.Ordinal);
        Assert.DoesNotContain("warning", (await RunAsync("validate", guarded, "--registry", broker.RegistryUrl)).Err, StringComparison.Ordinal);

        // Offline, against the contract's own schema file.
        string fileRule = await WriteAsync(Path.Combine(directory, "orders-rule.yaml"), "topic: orders\nvalue:\n  schemaFile: order-quantity.avsc\nrules:\n  - name: some\n    expr: value.quantity > 0 && value.qty < 100\n");
        await File.WriteAllTextAsync(Path.Combine(directory, "order-quantity.avsc"), OrderWithQuantity.Replace("\"it.refs.Customer\"", Customer, StringComparison.Ordinal));
        (int fileRuleCode, _, string fileRuleErr) = await RunAsync("validate", fileRule);
        Assert.Equal(ContractsCli.Invalid, fileRuleCode);
        Assert.Contains("rules[some]: reads value.qty, but no value schema", fileRuleErr, StringComparison.Ordinal);
        Assert.DoesNotContain("value.quantity", fileRuleErr, StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(directory, "order-quantity.avsc"), OrderWithQuantity);

        string spelt = await WriteAsync(Path.Combine(directory, "customers-ok.yaml"), "topic: customers\nvalue: {}\nprivacy:\n  - field: name\n    action: hash\n");
        (int speltCode, string speltOut, _) = await RunAsync("validate", spelt, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Ok, speltCode);
        Assert.Contains("the names the rules and privacy rules use were checked against its registered schemas", speltOut, StringComparison.Ordinal);
        // Read with its reference: the file parses, the privacy path through the referenced record resolves, the subject is new.
        (int newCode, string newOut, string newErr) = await RunAsync("validate", contract, "--registry", broker.RegistryUrl);
        Assert.True(newCode == ContractsCli.Ok, newErr);
        Assert.Contains("subject orders-value has no versions (soft-deleted ones are not compared), so order.avsc has nothing to be compatible with", newOut, StringComparison.Ordinal);

        // Against a registered version that has the same reference: a field added without a default breaks FULL_TRANSITIVE.
        await RegisterAsync("orders-value", new { schema = Order, references = new[] { new { name = "it.refs.Customer", subject = "customers-value", version = 1 } } });
        Assert.Equal(ContractsCli.Ok, (await RunAsync("validate", contract, "--registry", broker.RegistryUrl)).Code);
        (int breakingCode, _, string breakingErr) = await RunAsync("validate", breaking, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Invalid, breakingCode);
        Assert.Contains("order-quantity.avsc is not compatible with subject orders-value at FULL_TRANSITIVE", breakingErr, StringComparison.Ordinal);
        Assert.Contains("quantity", breakingErr, StringComparison.Ordinal);
        Assert.DoesNotContain("{compatibility:", breakingErr, StringComparison.Ordinal); // the heading names the level; it is not a problem
        (int againCode, string againOut, _) = await RunAsync("validate", contract, "--registry", broker.RegistryUrl);
        Assert.Equal(ContractsCli.Ok, againCode);
        Assert.Contains("order.avsc is compatible with subject orders-value at FULL_TRANSITIVE", againOut, StringComparison.Ordinal);

        // References belong to a schema file; a reference without its parts is named.
        string orphan = await WriteAsync(Path.Combine(directory, "orphan.yaml"), "topic: orders\nvalue:\n  references:\n    - name: x\n      subject: customers-value\n      version: 0\n");
        (int orphanCode, _, string orphanErr) = await RunAsync("validate", orphan);
        Assert.Equal(ContractsCli.Invalid, orphanCode);
        Assert.Contains("value.references[0] needs a name, a subject and a version", orphanErr, StringComparison.Ordinal);

        // The broker takes the contract; its diff names the reference.
        string admin = $"http://127.0.0.1:{broker.Host.HttpPort}";
        (int applyCode, _, string applyErr) = await RunAsync("apply", contract, "--url", admin);
        Assert.True(applyCode == ContractsCli.Ok, applyErr);
        (_, string listed, _) = await RunAsync("list", "--url", admin);
        Assert.Contains("orders", listed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValidateWaitsForTheRegistryNoLongerThanItsTimeoutInAll()
    {
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        await File.WriteAllTextAsync(Path.Combine(directory, "ping.avsc"), """{"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}""");
        string contract = await WriteAsync(Path.Combine(directory, "silent.yaml"), "topic: silent\nvalue:\n  schemaFile: ping.avsc\n");

        foreach (string bad in new[] { "0", "-1", "soon", "3601" })
        {
            (int code, _, string err) = await RunAsync("validate", contract, "--registry", "http://127.0.0.1:1", "--timeout", bad);
            Assert.True(code == ContractsCli.Usage, $"--timeout {bad}: exit {code}, {err}");
            Assert.Contains("--timeout must be a number of seconds", err, StringComparison.Ordinal);
        }

        // A registry that takes the connection and never answers: the check ends at --timeout (exit 3), not at the client's
        // 30 s per request (which, one request per registered version, added up without bound).
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var accepted = new List<System.Net.Sockets.TcpClient>();
        Task accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    accepted.Add(await silent.AcceptTcpClientAsync());
                }
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException)
            {
            }
        });
        string address = $"http://127.0.0.1:{((System.Net.IPEndPoint)silent.LocalEndpoint).Port}";
        Task<(int Code, string Out, string Err)> validating = RunAsync("validate", contract, "--registry", address, "--timeout", "0.5");
        (int silentCode, _, string silentErr) = await validating.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(ContractsCli.Unreachable, silentCode);
        Assert.Contains($"{address} did not finish answering the compatibility check within 0.5 s", silentErr, StringComparison.Ordinal);

        silent.Stop();
        await accepting.WaitAsync(TimeSpan.FromSeconds(10));
        accepted.ForEach(c => c.Dispose());
    }

    [Fact]
    public async Task AMisbehavingRegistryIsAClearFailureWithBoundedMemoryAndSafeOutput()
    {
        using var scratch = new ScratchDirectory();
        string directory = scratch.Path;
        await File.WriteAllTextAsync(Path.Combine(directory, "ping.avsc"), """{"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}""");
        using var registry = new System.Net.HttpListener();
        string prefix = $"http://127.0.0.1:{BrokerFixture.FreeLoopbackPort()}/";
        registry.Prefixes.Add(prefix);
        registry.Start();
        const string Hostile = "\u001b[2J\u001b[31mall checks passed\n::set-output name=x::y\r";
        Task serving = ServeWithAsync(registry, async context =>
        {
            string path = context.Request.Url!.AbsolutePath;
            context.Response.ContentType = "application/vnd.schemaregistry.v1+json";
            if (path == "/subjects/endless-value/versions")
            {
                // An answer that never ends: the CLI must give up on it, not read it into memory for ever.
                context.Response.SendChunked = true;
                byte[] chunk = new byte[64 * 1024];
                chunk.AsSpan().Fill((byte)'[');
                for (int sent = 0; sent < 64 * 1024; sent++) // at most 4 GiB; the client hangs up long before
                {
                    await context.Response.OutputStream.WriteAsync(chunk);
                }

                return;
            }

            (int status, string body) = path switch
            {
                "/subjects/nulls-value/versions" => (200, "[null]"),
                "/subjects/hostile-value/versions" or "/subjects/privacy-value/versions" => (200, "[1]"),
                "/subjects/hostile-value/versions/1" => (500, Hostile + new string('x', 100_000)),
                "/subjects/privacy-value/versions/1" => (200, """{"subject":"privacy-value","version":1,"id":7,"schemaType":"PROTOBUF","schema":"syntax = \"proto9\"; message {"}"""),
                _ => (404, """{"error_code":40401,"message":"Subject not found."}"""),
            };
            context.Response.StatusCode = status;
            await context.Response.OutputStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(body));
        });

        // A version list holding null: an unexpected answer (exit 3), where the CLI used to crash with a stack trace.
        string nulls = await WriteAsync(Path.Combine(directory, "nulls.yaml"), "topic: nulls\nvalue:\n  schemaFile: ping.avsc\n");
        (int nullsCode, _, string nullsErr) = await RunAsync("validate", nulls, "--registry", prefix).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ContractsCli.Unreachable, nullsCode);
        Assert.Contains("is not a list of version numbers (it holds null)", nullsErr, StringComparison.Ordinal);

        // An endless answer fails the command once it passes the CLI's bound, instead of growing to gigabytes.
        string endless = await WriteAsync(Path.Combine(directory, "endless.yaml"), "topic: endless\nvalue:\n  schemaFile: ping.avsc\n");
        (int endlessCode, _, string endlessErr) = await RunAsync("validate", endless, "--registry", prefix, "--timeout", "50").WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ContractsCli.Unreachable, endlessCode);
        Assert.Contains("maximum buffer size: 16777216", endlessErr, StringComparison.Ordinal);

        // A registry's error body is quoted cut short, on one line, with its escape sequences shown rather than sent to the terminal.
        string hostile = await WriteAsync(Path.Combine(directory, "hostile.yaml"), "topic: hostile\nvalue:\n  schemaFile: ping.avsc\n");
        (int hostileCode, _, string hostileErr) = await RunAsync("validate", hostile, "--registry", prefix).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ContractsCli.Unreachable, hostileCode);
        Assert.Contains("answered 500 for subject 'hostile-value' version 1: \\u001B[2J\\u001B[31mall checks passed\\n::set-output", hostileErr, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', hostileErr);
        Assert.DoesNotContain(hostileErr.Split('\n'), line => line.StartsWith("::", StringComparison.Ordinal));
        Assert.True(hostileErr.Length < 5_000, $"{hostileErr.Length} characters");

        // Privacy rules against a registered version this build cannot read: not verified (exit 1), not "checked".
        string privacy = await WriteAsync(Path.Combine(directory, "privacy.yaml"), "topic: privacy\nvalue: {}\nprivacy:\n  - field: email\n    action: redact\n");
        (int privacyCode, string privacyOut, string privacyErr) = await RunAsync("validate", privacy, "--registry", prefix).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ContractsCli.Invalid, privacyCode);
        Assert.Contains("whether the rules and privacy rules fit the schemas registered at", privacyErr, StringComparison.Ordinal);
        Assert.Contains("version 1 of subject 'privacy-value' (or a schema it references) cannot be read here", privacyErr, StringComparison.Ordinal);
        Assert.DoesNotContain("were checked against its registered schemas", privacyOut, StringComparison.Ordinal);

        registry.Stop();
        await serving.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Answers each request with <paramref name="answer"/> until the listener stops; a client that hangs up ends only its request.</summary>
    private static async Task ServeWithAsync(System.Net.HttpListener listener, Func<System.Net.HttpListenerContext, Task> answer)
    {
        while (listener.IsListening)
        {
            System.Net.HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is System.Net.HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                try
                {
                    await answer(context);
                    context.Response.Close();
                }
                catch (Exception e) when (e is System.Net.HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
                {
                    context.Response.Abort();
                }
            });
        }
    }

    /// <summary>Answers GETs from fixed bodies (404 for any other path) until the listener stops.</summary>
    private static Task ServeAsync(System.Net.HttpListener listener, Dictionary<string, string> bodies) =>
        ServeWithAsync(listener, async context =>
        {
            bool known = bodies.TryGetValue(context.Request.Url!.AbsolutePath, out string? body);
            context.Response.StatusCode = known ? 200 : 404;
            context.Response.ContentType = "application/vnd.schemaregistry.v1+json";
            await context.Response.OutputStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(body ?? """{"error_code":404,"message":"not here"}"""));
        });

    /// <summary>A fresh directory under the temporary path, deleted with what it holds when disposed.</summary>
    private sealed class ScratchDirectory : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sharedlog-cli-" + Guid.NewGuid().ToString("N"));

        public ScratchDirectory() => Directory.CreateDirectory(Path);

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    private static async Task<string> WriteAsync(string path, string text)
    {
        await File.WriteAllTextAsync(path, text);
        return path;
    }
}
