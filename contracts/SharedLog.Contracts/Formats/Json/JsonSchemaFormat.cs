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

        CheckReferenceDepth(set);
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

    /// <summary>
    /// Most levels (JSON pointer steps, plus one per <c>$ref</c> taken) a schema may reach down through its <c>$ref</c>s
    /// without coming back to a schema on the way. The validator library recurses once per level when it builds and when
    /// it validates: a chain of 20,000 <c>$ref</c>s (within the 1 MiB limit) overflowed the broker's stack and killed the
    /// process at the first record (from a hostile-input review). With <see cref="ReferenceToReferenceLevels"/> this admits
    /// about a third of what overflowed a 1.5 MiB stack; a real schema's references nest a few dozen levels.
    /// </summary>
    internal const int MaxReferenceDepth = 1_000;

    /// <summary>
    /// Levels a <c>$ref</c> to another <c>$ref</c> counts for: measured on a 1.5 MiB stack (a thread-pool thread's), the
    /// library overflowed at about 750 such hops in a row, and at about 1,450 links of a chain through <c>properties</c>.
    /// </summary>
    private const int ReferenceToReferenceLevels = 4;

    private static bool IsReference(SchemaNode node) => node.Element.ValueKind == JsonValueKind.Object && node.Element.TryGetProperty("$ref", out _);

    /// <summary>Refuses a schema whose <c>$ref</c>s lead deeper than <see cref="MaxReferenceDepth"/> levels (a recursive schema, whose references come back, is bounded by its data instead).</summary>
    private static void CheckReferenceDepth(JsonSchemaSet set)
    {
        var refsByDocument = new Dictionary<string, List<(string Pointer, string Reference)>>(StringComparer.Ordinal);
        foreach (var document in set.Documents)
        {
            // Sorted, so the references under a node are one run: those whose pointer starts with the node's and a '/'.
            refsByDocument[document.Key] = [.. document.Refs.OrderBy(r => r.Pointer, StringComparer.Ordinal)];
        }

        var deepest = new Dictionary<string, int>(StringComparer.Ordinal);
        var walking = new HashSet<string>(StringComparer.Ordinal);
        foreach (var document in set.Documents)
        {
            Depth(document, string.Empty, 0);
        }

        // The deepest a walk goes from the node at (document, pointer): the levels to each $ref under it, plus its target's.
        // Our own recursion is bounded too: each call is at least a level deeper (above), and the walk stops past the limit.
        int Depth(JsonSchemaDocument document, string pointer, int above)
        {
            var key = document.Key + "#" + pointer;
            if (deepest.TryGetValue(key, out var known))
            {
                return known;
            }

            if (!walking.Add(key))
            {
                return 0; // a reference back to a schema on the way: recursion the data bounds
            }

            var refs = refsByDocument[document.Key];
            var below = pointer + "/";
            var first = refs.BinarySearch((pointer, string.Empty), Comparer<(string Pointer, string Reference)>.Create((x, y) => string.CompareOrdinal(x.Pointer, y.Pointer)));
            var depth = 0;
            for (var i = first < 0 ? ~first : first; i >= 0 && i < refs.Count; i++)
            {
                var (at, reference) = refs[i];
                if (at != pointer && !at.StartsWith(below, StringComparison.Ordinal))
                {
                    if (string.CompareOrdinal(at, below) > 0)
                    {
                        break; // past the run of this node's descendants
                    }

                    continue; // a sibling that sorts between the node and its descendants ("/a" and "/a/..." around "/a-b")
                }

                var target = document.Set.Resolve(document, at, reference);
                var steps = at.Count(c => c == '/') - pointer.Count(c => c == '/') + (target is { } hop && IsReference(hop) ? ReferenceToReferenceLevels : 1);
                target = above + steps > MaxReferenceDepth ? null : target;
                depth = Math.Max(depth, steps + (target is { } node ? Depth(node.Document, node.Pointer, above + steps) : 0));
                if (above + depth > MaxReferenceDepth)
                {
                    throw new InvalidSchemaException($"Invalid JSON schema at {document.Label(at)}/$ref: its references lead more than {MaxReferenceDepth} levels deep, more than validation can follow");
                }
            }

            walking.Remove(key);
            deepest[key] = depth;
            return depth;
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
