using System.Text.Json;

namespace SharedLog.Protocol.Generator;

/// <summary>One message file of Kafka's protocol spec (request, response, header or data).</summary>
public sealed class MessageSpec
{
    public required string Name { get; init; }

    public required string Kind { get; init; }

    public short? ApiKey { get; init; }

    public required VersionRange ValidVersions { get; init; }

    public required VersionRange FlexibleVersions { get; init; }

    public required IReadOnlyList<FieldSpec> Fields { get; init; }

    public required IReadOnlyList<StructSpec> CommonStructs { get; init; }

    public static MessageSpec Load(string path)
    {
        var options = new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path), options);
        JsonElement root = document.RootElement;
        return new MessageSpec
        {
            Name = root.GetProperty("name").GetString()!,
            Kind = root.GetProperty("type").GetString()!,
            ApiKey = root.TryGetProperty("apiKey", out JsonElement key) ? key.GetInt16() : null,
            ValidVersions = VersionRange.Parse(root.GetProperty("validVersions").GetString()),
            FlexibleVersions = VersionRange.Parse(root.GetProperty("flexibleVersions").GetString()),
            Fields = FieldSpec.ParseList(root, "fields"),
            CommonStructs = root.TryGetProperty("commonStructs", out JsonElement common)
                ? common.EnumerateArray().Select(c => new StructSpec(c.GetProperty("name").GetString()!, FieldSpec.ParseList(c, "fields"))).ToList()
                : [],
        };
    }

    public static IReadOnlyList<MessageSpec> LoadAll(string messageDirectory) =>
        Directory.GetFiles(messageDirectory, "*.json")
            .Order(StringComparer.Ordinal)
            .Select(Load)
            .ToList();
}

public sealed record StructSpec(string Name, IReadOnlyList<FieldSpec> Fields);

/// <summary>One field of a message or struct.</summary>
public sealed class FieldSpec
{
    public required string Name { get; init; }

    /// <summary>The spec type: a primitive, <c>[]T</c>, or a struct name.</summary>
    public required string Type { get; init; }

    public required VersionRange Versions { get; init; }

    public required VersionRange NullableVersions { get; init; }

    public required VersionRange TaggedVersions { get; init; }

    public int? Tag { get; init; }

    public string? Default { get; init; }

    /// <summary>A per-field override of the message's flexible versions (the request header's ClientId).</summary>
    public VersionRange? FlexibleVersions { get; init; }

    public IReadOnlyList<FieldSpec>? Fields { get; init; }

    /// <summary>The C# property name: the spec name with its first letter upper-cased (a few spec names start lower-case).</summary>
    public string PropertyName => char.ToUpperInvariant(Name[0]) + Name[1..];

    public bool IsArray => Type.StartsWith("[]", StringComparison.Ordinal);

    public string ElementType => IsArray ? Type[2..] : Type;

    public bool IsStructType => char.IsUpper(ElementType[0]);

    internal static List<FieldSpec> ParseList(JsonElement owner, string property) =>
        owner.TryGetProperty(property, out JsonElement list)
            ? list.EnumerateArray().Select(Parse).ToList()
            : [];

    private static FieldSpec Parse(JsonElement e)
    {
        string? Text(string name) => e.TryGetProperty(name, out JsonElement v)
            ? v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                _ => v.GetRawText(),
            }
            : null;

        return new FieldSpec
        {
            Name = Text("name")!,
            Type = Text("type")!,
            Versions = VersionRange.Parse(Text("versions")),
            NullableVersions = VersionRange.Parse(Text("nullableVersions")),
            TaggedVersions = VersionRange.Parse(Text("taggedVersions")),
            Tag = Text("tag") is { } tag ? int.Parse(tag, System.Globalization.CultureInfo.InvariantCulture) : null,
            Default = Text("default"),
            FlexibleVersions = Text("flexibleVersions") is { } flex ? VersionRange.Parse(flex) : null,
            Fields = e.TryGetProperty("fields", out _) ? ParseList(e, "fields") : null,
        };
    }
}
