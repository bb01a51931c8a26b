using System.Text.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// JSON Schema (drafts 4 to 2020-12) for the registry: bounded parsing with keyword type checks and
/// <c>$ref</c> resolution, a key-sorted canonical form, and a structural compatibility check.
/// </summary>
public sealed class JsonSchemaFormat : ISchemaFormat
{
    /// <summary>Most documents (the schema and its transitive references) one schema may pull in.</summary>
    internal const int MaxDocuments = 1000;

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        MaxDepth = SchemaLimits.MaxDepth,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    public SchemaType Type => SchemaType.Json;

    public IParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize)
    {
        ArgumentNullException.ThrowIfNull(schemaText);
        references ??= [];

        var set = new JsonSchemaSet();
        var root = set.Add(string.Empty, ParseJson(schemaText, "schema"));
        AddReferences(set, references, 1);

        foreach (var document in set.Documents)
        {
            JsonSchemaKeywords.Validate(document);
        }

        // Nodes already known to lead to a real schema: a chain of n pure $refs is walked once, not once from each of its links.
        var reachesSchema = new HashSet<string>(StringComparer.Ordinal);
        foreach (var document in set.Documents)
        {
            foreach (var (pointer, reference) in document.Refs)
            {
                CheckReference(document, pointer, reference, reachesSchema);
            }
        }

        set.Bindings.Complete();
        var canonical = JsonCanonical.Write(root.Root);
        return new ParsedJsonSchema(normalize ? canonical : schemaText, canonical, references, set);
    }

    public IReadOnlyList<string> CheckCompatibility(IParsedSchema reader, IParsedSchema writer)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(writer);
        if (reader is not ParsedJsonSchema jsonReader || writer is not ParsedJsonSchema jsonWriter)
        {
            throw new ArgumentException("Both schemas must have been parsed by JsonSchemaFormat.");
        }

        return new JsonSchemaComparer().Compare(jsonReader.Schemas, jsonWriter.Schemas);
    }

    internal static JsonElement ParseJson(string text, string what)
    {
        if (text.Length > SchemaLimits.MaxSchemaChars)
        {
            throw new InvalidSchemaException($"Invalid JSON schema: the {what} is {text.Length} characters long, more than the limit of {SchemaLimits.MaxSchemaChars}");
        }

        try
        {
            using var document = JsonDocument.Parse(text, DocumentOptions);

            // A clone owns its memory, so the pooled document can be returned now.
            return document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            var line = (ex.LineNumber ?? 0) + 1;
            var position = (ex.BytePositionInLine ?? 0) + 1;
            throw new InvalidSchemaException($"Invalid JSON in the {what} at line {line}, position {position}: {ex.Message}", ex);
        }
    }

    private static void AddReferences(JsonSchemaSet set, IReadOnlyList<ResolvedReference> references, int depth)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            throw new InvalidSchemaException($"Invalid JSON schema: references are nested deeper than {SchemaLimits.MaxDepth}");
        }

        foreach (var reference in references)
        {
            if (reference is null || string.IsNullOrEmpty(reference.Name))
            {
                throw new InvalidSchemaException("Invalid JSON schema: a reference has no name");
            }

            var hash = reference.Name.IndexOf('#', StringComparison.Ordinal);
            var name = hash < 0 ? reference.Name : reference.Name[..hash];
            if (set.Contains(name))
            {
                set.Bindings.Shadow(name, reference);
                continue;
            }

            if (set.Count >= MaxDocuments)
            {
                throw new InvalidSchemaException($"Invalid JSON schema: more than {MaxDocuments} referenced schemas");
            }

            set.Bindings.Bind(name, reference); // first: adding it may find its URI claimed by another
            set.Add(name, ParseJson(reference.SchemaText ?? string.Empty, $"reference '{reference.Name}'"));
            AddReferences(set, reference.References ?? [], depth + 1);
        }
    }

    /// <summary>Every $ref must resolve, and a chain of pure $refs must reach a real schema.</summary>
    /// <param name="reachesSchema">Nodes (document#pointer) already found to lead to a real schema; this walk's nodes are added when it finds one.</param>
    private static void CheckReference(JsonSchemaDocument document, string pointer, string reference, HashSet<string> reachesSchema)
    {
        var start = document.Key + "#" + pointer;
        if (reachesSchema.Contains(start))
        {
            return;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal) { start };
        var from = document;
        var fromPointer = pointer;
        var text = reference;
        while (true)
        {
            if (from.Set.Resolve(from, fromPointer, text) is not { } target)
            {
                throw new InvalidSchemaException($"Invalid JSON schema at {from.Label(fromPointer)}/$ref: cannot resolve '{text}'");
            }

            var key = target.Document.Key + "#" + target.Pointer;
            if (reachesSchema.Contains(key))
            {
                reachesSchema.UnionWith(seen);
                return;
            }

            if (!seen.Add(key))
            {
                throw new InvalidSchemaException($"Invalid JSON schema at {document.Label(pointer)}/$ref: '{reference}' is a cycle of references that never reaches a schema");
            }

            if (!target.TryGet("$ref", out var next) || next.ValueKind != JsonValueKind.String)
            {
                reachesSchema.UnionWith(seen);
                return;
            }

            from = target.Document;
            fromPointer = target.Pointer;
            text = next.GetString()!;
        }
    }
}

/// <summary>A parsed JSON schema and the documents its references resolve to.</summary>
internal sealed class ParsedJsonSchema(string text, string canonical, IReadOnlyList<ResolvedReference> references, JsonSchemaSet schemas) : IParsedSchema
{
    public SchemaType Type => SchemaType.Json;

    public string Text { get; } = text;

    public string Canonical { get; } = canonical;

    public IReadOnlyList<ResolvedReference> References { get; } = references;

    public JsonSchemaSet Schemas { get; } = schemas;
}
