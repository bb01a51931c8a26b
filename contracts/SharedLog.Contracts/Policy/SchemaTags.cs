using System.Text.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// Field paths a schema tags with a given tag (Confluent's <c>confluent:tags</c>: an Avro field
/// property, or a JSON Schema keyword on a property), so privacy rules can name a tag such as PII
/// instead of every path. For Protobuf, the tags of <c>(confluent.field_meta).tags</c> field options
/// (<c>import "confluent/meta.proto"</c>), from the record's message.
/// </summary>
public static class SchemaTags
{
    public static IReadOnlyList<string> PathsWithTag(IParsedSchema schema, string tag, string? protobufMessage = null)
    {
        if (schema is Formats.Protobuf.ProtobufParsedSchema protobuf)
        {
            return Formats.Protobuf.ConfluentMeta.PathsWithTag(protobuf, tag, protobufMessage);
        }

        var paths = new List<string>();
        if (schema is Formats.Avro.AvroParsedSchema avro)
        {
            int avroBudget = SchemaLimits.MaxTaggedWalkSteps;
            WalkAvro(avro.Schema, "", tag, paths, new HashSet<string>(StringComparer.Ordinal), 0, ref avroBudget, new Dictionary<Avro.Schema, bool>(ReferenceEqualityComparer.Instance));
            return Once(paths);
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(schema.Text, JsonRefs.DocumentOptions);
            using var refs = new JsonRefs(schema.References);
            int jsonBudget = SchemaLimits.MaxTaggedWalkSteps;
            WalkJson(document.RootElement, "", tag, paths, 0, ref jsonBudget, new JsonDoc(document.RootElement, ""), refs, new HashSet<string>(StringComparer.Ordinal));
        }
        catch (JsonException)
        {
            // Not JSON text (cannot happen for a parsed JSON Schema); no tagged paths.
        }

        return Once(paths);
    }

    /// <summary>
    /// Each path once, in the order found: two branches (union records, anyOf or then/else) may tag a field of the same
    /// name, and a path listed twice would be hashed twice, its value then unlike the same value hashed elsewhere.
    /// </summary>
    private static List<string> Once(List<string> paths) => paths.Count < 2 ? paths : [.. paths.Distinct(StringComparer.Ordinal)];

    /// <summary>Counts one step (a schema node entered) against the walk's budget: past it the tagged fields cannot all be found, so the caller fails closed.</summary>
    private static void Step(ref int budget)
    {
        if (--budget < 0)
        {
            throw SchemaLimits.TaggedWalkTooLarge();
        }
    }

    /// <summary>Whether a JSON Schema property's <c>confluent:tags</c> lists the tag.</summary>
    private static bool HasTag(JsonElement element, string tag) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("confluent:tags", out JsonElement tags) && ListsTag(tags, tag);

    private static bool ListsTag(JsonElement tags, string tag) =>
        tags.ValueKind == JsonValueKind.Array && tags.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.GetString() == tag);

    /// <summary>
    /// Walks an Avro type as the Avro library resolved it, so a named type used again by name (a second Address
    /// field) or from a referenced schema is the same record as its definition. A record is not entered again
    /// inside itself (recursive types), since a dotted path cannot name every level of one.
    /// </summary>
    /// <param name="holdsTag">Per type, whether a tagged field is anywhere in it, as found at a map or a recursion (asked once per walk).</param>
    private static void WalkAvro(Avro.Schema type, string prefix, string tag, List<string> paths, HashSet<string> walking, int depth, ref int budget, Dictionary<Avro.Schema, bool> holdsTag)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth)
        {
            return;
        }

        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    WalkAvro(branch, prefix, tag, paths, walking, depth + 1, ref budget, holdsTag);
                }

                break;
            case Avro.ArraySchema array:
                WalkAvro(array.ItemSchema, prefix, tag, paths, walking, depth + 1, ref budget, holdsTag);
                break;
            case Avro.RecordSchema record when walking.Add(record.Fullname):
                foreach (Avro.Field field in record.Fields)
                {
                    string path = prefix.Length == 0 ? field.Name : $"{prefix}.{field.Name}";
                    if (AvroFieldHasTag(field, tag))
                    {
                        SchemaLimits.AddTaggedPath(paths, path);
                    }
                    else
                    {
                        WalkAvro(field.Schema, path, tag, paths, walking, depth + 1, ref budget, holdsTag);
                    }
                }

                walking.Remove(record.Fullname);
                break;
            case Avro.RecordSchema again when HoldsTag(again, tag, depth, ref budget, holdsTag):
                // Inside itself: the levels below this one hold tagged fields that no dotted path names.
                throw Unresolvable($"the record {again.Fullname} holds itself at {prefix} and has fields tagged {tag}, which a dotted privacy path cannot name at every level; name the tagged fields by path instead of the tag, and drop {prefix} by its path");
            case Avro.MapSchema map when HoldsTag(map.ValueSchema, tag, depth, ref budget, holdsTag):
                throw MapValueTagged(prefix, tag);
        }
    }

    /// <summary>As <see cref="AvroContainsTag"/>, remembered per type for the walk (a type under many maps is looked into once).</summary>
    private static bool HoldsTag(Avro.Schema type, string tag, int depth, ref int budget, Dictionary<Avro.Schema, bool> holdsTag)
    {
        if (!holdsTag.TryGetValue(type, out bool holds))
        {
            holdsTag[type] = holds = AvroContainsTag(type, tag, [], depth, ref budget);
        }

        return holds;
    }

    /// <summary>Whether a field tagged <paramref name="tag"/> is anywhere in an Avro type (each record looked into once).</summary>
    private static bool AvroContainsTag(Avro.Schema type, string tag, HashSet<string> seen, int depth, ref int budget)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth)
        {
            return false;
        }

        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    if (AvroContainsTag(branch, tag, seen, depth + 1, ref budget))
                    {
                        return true;
                    }
                }

                return false;
            case Avro.ArraySchema array:
                return AvroContainsTag(array.ItemSchema, tag, seen, depth + 1, ref budget);
            case Avro.MapSchema map:
                return AvroContainsTag(map.ValueSchema, tag, seen, depth + 1, ref budget);
            case Avro.RecordSchema record when seen.Add(record.Fullname):
                foreach (Avro.Field field in record.Fields)
                {
                    if (AvroFieldHasTag(field, tag) || AvroContainsTag(field.Schema, tag, seen, depth + 1, ref budget))
                    {
                        return true;
                    }
                }

                return false;
            default:
                return false;
        }
    }

    /// <summary>A walk that fails closed: records are refused (and the contract at apply), not stored with tagged fields in clear.</summary>
    private static InvalidOperationException Unresolvable(string why) => new($"tagged fields cannot be resolved: {why}");

    /// <summary>Tagged fields inside the values of a map (keys are data, so no dotted path names them).</summary>
    internal static InvalidOperationException MapValueTagged(string mapPath, string tag) =>
        Unresolvable($"the values of the map {(mapPath.Length == 0 ? "(the record itself)" : mapPath)} hold fields tagged {tag}, which a dotted privacy path cannot name (map keys are data); name the tagged fields by path instead of the tag, and drop the map by its path");

    /// <summary>Whether a field's <c>confluent:tags</c> property (kept by the Avro library as JSON text) lists the tag.</summary>
    private static bool AvroFieldHasTag(Avro.Field field, string tag)
    {
        if (field.GetProperty("confluent:tags") is not { } tags)
        {
            return false;
        }

        using JsonDocument document = JsonDocument.Parse(tags);
        return ListsTag(document.RootElement, tag);
    }

    /// <summary>A JSON Schema document of the walk: the registered schema (name "") or one it references (by its reference name).</summary>
    private readonly record struct JsonDoc(JsonElement Root, string Name);

    /// <summary>
    /// Where the JSON tag walk goes at a <c>$ref</c>: a pointer into the document it is in (<c>#/$defs/X</c>), or a schema
    /// the registered one references, by the reference's name as Confluent's serializers write it (<c>customer.json</c>,
    /// <c>customer.json#/$defs/Address</c>), references of references included.
    /// </summary>
    private sealed class JsonRefs : IDisposable
    {
        public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = SchemaLimits.MaxDepth };

        private readonly Dictionary<string, ResolvedReference> _byName = new(StringComparer.Ordinal);
        private readonly Dictionary<string, JsonDocument?> _parsed = new(StringComparer.Ordinal);

        public JsonRefs(IReadOnlyList<ResolvedReference> references) => Collect(references, 0);

        private void Collect(IReadOnlyList<ResolvedReference> references, int depth)
        {
            if (depth > SchemaLimits.MaxDepth)
            {
                return;
            }

            foreach (ResolvedReference reference in references)
            {
                if (_byName.TryAdd(reference.Name, reference))
                {
                    Collect(reference.References ?? [], depth + 1);
                }
            }
        }

        /// <summary>
        /// The schema <paramref name="reference"/> names, seen from <paramref name="from"/>, and a key naming it in every
        /// document; null when it names nothing the walk can read (the caller fails closed).
        /// </summary>
        public (JsonDoc Doc, JsonElement Target, string Key)? Resolve(JsonDoc from, string reference)
        {
            int hash = reference.IndexOf('#', StringComparison.Ordinal);
            string name = hash < 0 ? reference : reference[..hash];
            string fragment = hash < 0 ? "#" : reference[hash..];
            JsonDoc doc = from;
            if (name.Length > 0)
            {
                if (!_byName.TryGetValue(name, out ResolvedReference? referenced))
                {
                    return null;
                }

                if (!_parsed.TryGetValue(name, out JsonDocument? document))
                {
                    try
                    {
                        document = JsonDocument.Parse(referenced.SchemaText, DocumentOptions);
                    }
                    catch (JsonException)
                    {
                        document = null; // registered, so parsed once; never read here as "no tags"
                    }

                    _parsed[name] = document;
                }

                if (document is null)
                {
                    return null;
                }

                doc = new JsonDoc(document.RootElement, name);
            }

            return SchemaFieldPaths.JsonPointer(doc.Root, fragment) is { } target ? (doc, target, doc.Name + fragment) : null;
        }

        /// <summary>As <see cref="Resolve"/>, and a reference the walk cannot follow fails it: what it names may hold tagged fields.</summary>
        public (JsonDoc Doc, JsonElement Target, string Key) Follow(JsonDoc from, string reference, string at, string tag) =>
            Resolve(from, reference) ?? throw Unresolvable(
                $"the $ref '{reference}'{(at.Length == 0 ? "" : $" at {at.Replace(DottedNameMark, '.')}")} names neither a part of its schema nor a schema it references, so fields tagged {tag} behind it cannot be found; name the tagged fields by path instead of the tag");

        public void Dispose()
        {
            foreach (JsonDocument? document in _parsed.Values)
            {
                document?.Dispose();
            }
        }
    }

    /// <summary>
    /// Walks a JSON Schema: properties, the <see cref="SameLevelSchemas"/> (array items, allOf/anyOf/oneOf branches,
    /// if/then/else...: their properties are at the same level), and <c>$ref</c>s (local ones and the schemas it
    /// references, see <see cref="JsonRefs"/>), each not entered again inside itself.
    /// </summary>
    /// <summary>Stands for a '.' inside a property name while a path is built (a name holding NUL itself is refused too: closed, not open).</summary>
    private const char DottedNameMark = '\0';

    private static void WalkJson(JsonElement schema, string prefix, string tag, List<string> paths, int depth, ref int budget, JsonDoc doc, JsonRefs refs, HashSet<string> walking)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String && reference.GetString() is { } pointer)
        {
            (JsonDoc targetDoc, JsonElement target, string key) = refs.Follow(doc, pointer, prefix, tag);
            if (walking.Add(key))
            {
                WalkJson(target, prefix, tag, paths, depth + 1, ref budget, targetDoc, refs, walking);
                walking.Remove(key);
            }
            else if (JsonContainsTag(target, tag, targetDoc, refs, [], depth + 1, ref budget))
            {
                throw Unresolvable($"{pointer} holds itself at {prefix.Replace(DottedNameMark, '.')} and has fields tagged {tag}, which a dotted privacy path cannot name at every level; name the tagged fields by path instead of the tag, and drop {prefix.Replace(DottedNameMark, '.')} by its path");
            }
        }

        foreach (JsonElement mapValues in MapValueSchemas(schema))
        {
            if (JsonContainsTag(mapValues, tag, doc, refs, [], depth + 1, ref budget))
            {
                throw MapValueTagged(prefix.Replace(DottedNameMark, '.'), tag);
            }
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                // A '.' in a name would make the dotted path name other fields: marked, so a tagged field below it is refused.
                string name = property.Name.Contains('.', StringComparison.Ordinal) ? property.Name.Replace('.', DottedNameMark) : property.Name;
                string path = prefix.Length == 0 ? name : $"{prefix}.{name}";
                if (IsTagged(property.Value, tag, doc, refs, path, depth + 1, ref budget))
                {
                    if (path.Contains(DottedNameMark, StringComparison.Ordinal))
                    {
                        // Failing the walk fails closed: records are refused (and the contract at apply), not stored in clear.
                        throw new InvalidOperationException($"tagged fields cannot be resolved: the tagged field {path.Replace(DottedNameMark, '.')} is under a property whose name holds '.', which a dotted privacy path cannot name; rename the property");
                    }

                    SchemaLimits.AddTaggedPath(paths, path);
                }
                else
                {
                    WalkJson(property.Value, path, tag, paths, depth + 1, ref budget, doc, refs, walking);
                }
            }
        }

        foreach (JsonElement part in SameLevelSchemas(schema))
        {
            WalkJson(part, prefix, tag, paths, depth + 1, ref budget, doc, refs, walking);
        }
    }

    /// <summary>
    /// The subschemas that describe the same value as <paramref name="schema"/> or, for an array, its elements (which the
    /// rewriter walks one by one under the same path): <c>items</c> (one schema, or draft-07's tuple list),
    /// <c>prefixItems</c>, <c>additionalItems</c>, <c>allOf</c>/<c>anyOf</c>/<c>oneOf</c>, <c>if</c>/<c>then</c>/<c>else</c>
    /// and <c>dependentSchemas</c>. Not <c>not</c>: a tag on what a value must not be tags nothing it is.
    /// </summary>
    private static IEnumerable<JsonElement> SameLevelSchemas(JsonElement schema)
    {
        foreach (string keyword in (string[])["items", "prefixItems", "additionalItems", "allOf", "anyOf", "oneOf", "if", "then", "else"])
        {
            if (!schema.TryGetProperty(keyword, out JsonElement found))
            {
                continue;
            }

            if (found.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement item in found.EnumerateArray())
                {
                    yield return item;
                }
            }
            else
            {
                yield return found;
            }
        }

        // Draft 2019-09's dependentSchemas, and draft-07's dependencies in their schema form (the other form lists names).
        foreach (string keyword in (string[])["dependentSchemas", "dependencies"])
        {
            if (schema.TryGetProperty(keyword, out JsonElement dependents) && dependents.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty dependent in dependents.EnumerateObject())
                {
                    if (dependent.Value.ValueKind == JsonValueKind.Object)
                    {
                        yield return dependent.Value;
                    }
                }
            }
        }
    }

    /// <summary>The schemas of an object's members that no property names: <c>additionalProperties</c>, <c>unevaluatedProperties</c> and <c>patternProperties</c>.</summary>
    private static IEnumerable<JsonElement> MapValueSchemas(JsonElement schema)
    {
        foreach (string keyword in (string[])["additionalProperties", "unevaluatedProperties"])
        {
            if (schema.TryGetProperty(keyword, out JsonElement additional) && additional.ValueKind == JsonValueKind.Object)
            {
                yield return additional;
            }
        }

        if (schema.TryGetProperty("patternProperties", out JsonElement patterns) && patterns.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty pattern in patterns.EnumerateObject())
            {
                yield return pattern.Value;
            }
        }
    }

    /// <summary>Whether the tag is anywhere in a JSON Schema (each <c>$ref</c> looked into once).</summary>
    private static bool JsonContainsTag(JsonElement schema, string tag, JsonDoc doc, JsonRefs refs, HashSet<string> seen, int depth, ref int budget)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        if (HasTag(schema, tag))
        {
            return true;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String && reference.GetString() is { } pointer
            && refs.Follow(doc, pointer, "", tag) is var (targetDoc, target, key) && seen.Add(key) && JsonContainsTag(target, tag, targetDoc, refs, seen, depth + 1, ref budget))
        {
            return true;
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                if (JsonContainsTag(property.Value, tag, doc, refs, seen, depth + 1, ref budget))
                {
                    return true;
                }
            }
        }

        foreach (JsonElement part in SameLevelSchemas(schema).Concat(MapValueSchemas(schema)))
        {
            if (JsonContainsTag(part, tag, doc, refs, seen, depth + 1, ref budget))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Whether a property's schema carries the tag itself, or through what it is made of: a local <c>$ref</c> to a
    /// tagged definition (<c>"email": {"$ref": "#/$defs/Email"}</c>), a tagged <c>allOf</c> branch, a tagged <c>anyOf</c>
    /// or <c>oneOf</c> branch (<c>[{"type": "string", "confluent:tags": ["PII"]}, {"type": "null"}]</c>: the value may be
    /// the tagged kind, so it is masked whichever it is), tagged array <c>items</c> (every element is; one tagged tuple
    /// position masks every element), or any other of <see cref="SameLevelSchemas"/> tagged.
    /// </summary>
    private static bool IsTagged(JsonElement schema, string tag, JsonDoc doc, JsonRefs refs, string at, int depth, ref int budget)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        if (HasTag(schema, tag))
        {
            return true;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String
            && reference.GetString() is { } pointer && refs.Follow(doc, pointer, at, tag) is var (targetDoc, target, _) && IsTagged(target, tag, targetDoc, refs, at, depth + 1, ref budget))
        {
            return true;
        }

        foreach (JsonElement part in SameLevelSchemas(schema))
        {
            if (IsTagged(part, tag, doc, refs, at, depth + 1, ref budget))
            {
                return true;
            }
        }

        return false;
    }
}
