namespace SharedLog.Protocol.Generator;

/// <summary>Turns Kafka's JSON message specs into the checked-in C# under protocol/SharedLog.Protocol/Generated.</summary>
public static class ProtocolGenerator
{
    /// <summary>Generates every file into <paramref name="outputDirectory"/> and returns their names.</summary>
    public static IReadOnlyList<string> Generate(string specDirectory, string outputDirectory)
    {
        string messageDirectory = Path.Combine(specDirectory, "message");
        IReadOnlyList<MessageSpec> messages = MessageSpec.LoadAll(messageDirectory);
        Directory.CreateDirectory(outputDirectory);
        var written = new List<string>();

        void Write(string name, string text)
        {
            File.WriteAllText(Path.Combine(outputDirectory, name), text.Replace("\r\n", "\n", StringComparison.Ordinal));
            written.Add(name);
        }

        foreach (string path in Directory.GetFiles(messageDirectory, "*.json").Order(StringComparer.Ordinal))
        {
            MessageSpec message = MessageSpec.Load(path);
            Write(message.Name + ".g.cs", new MessageEmitter(message).Emit(Path.GetFileName(path)));
        }

        Write("ApiKey.g.cs", RegistryEmitter.EmitApiRegistry(messages));
        Write("ErrorCode.g.cs", RegistryEmitter.EmitErrorCodes(Path.Combine(specDirectory, "error-codes.tsv")));

        // Files from specs that no longer exist would otherwise linger and still compile.
        foreach (string stale in Directory.GetFiles(outputDirectory, "*.g.cs"))
        {
            if (!written.Contains(Path.GetFileName(stale)))
            {
                File.Delete(stale);
            }
        }

        return written;
    }
}
