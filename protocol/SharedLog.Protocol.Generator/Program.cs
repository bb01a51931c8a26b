using SharedLog.Protocol.Generator;

// Usage: SharedLog.Protocol.Generator [specDirectory] [outputDirectory]
// Defaults: ../shared/kafka-protocol beside the repository, and protocol/SharedLog.Protocol/Generated.
string root = FindRepositoryRoot(AppContext.BaseDirectory) ?? FindRepositoryRoot(Directory.GetCurrentDirectory())
    ?? throw new InvalidOperationException("Run from inside the SharedLog repository or pass both directories.");
string spec = args.Length > 0 ? args[0] : Path.GetFullPath(Path.Combine(root, "..", "shared", "kafka-protocol"));
string output = args.Length > 1 ? args[1] : Path.Combine(root, "protocol", "SharedLog.Protocol", "Generated");
if (!Directory.Exists(Path.Combine(spec, "message")))
{
    Console.Error.WriteLine($"No Kafka message specs at {spec}/message.");
    return 2;
}

IReadOnlyList<string> files = ProtocolGenerator.Generate(spec, output);
Console.WriteLine($"Wrote {files.Count} files to {output}.");
return 0;

static string? FindRepositoryRoot(string start)
{
    for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "SharedLogBroker.sln")))
        {
            return dir.FullName;
        }
    }

    return null;
}
