using System.Text.Json;
using SharedLog.Contracts.Formats.Json;
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
        CheckHiddenSchemas(schema, tag);
        if (schema is Formats.Protobuf.ProtobufParsedSchema protobuf)
        {
            return Formats.Protobuf.ConfluentMeta.PathsWithTag(protobuf, tag, protobufMessage);
        }

        var paths = new List<string>();
        if (schema is Formats.Avro.AvroParsedSchema avro)
        {
            int avroBudget = SchemaLimits.MaxTaggedWalkSteps;
            if (AvroTypeHasTag(avro.Schema, tag))
            {
                throw Unresolvable($"the schema's root type (itself, its items or a branch of it) is tagged {tag}, and a privacy path names fields, not the whole record; tag its fields instead");
            }

            WalkAvro(avro.Schema, "", tag, paths, new HashSet<string>(StringComparer.Ordinal), 0, ref avroBudget, new Dictionary<Avro.Schema, bool>(ReferenceEqualityComparer.Instance));
            return Once(paths);
        }

        // Only the three formats parse schemas; a JSON one carries the documents its references resolve to.
        var json = (ParsedJsonSchema)schema;
        int jsonBudget = SchemaLimits.MaxTaggedWalkSteps;
        if (IsTagged(json.Schemas.Root.RootNode, tag, "", 0, ref jsonBudget))
        {
            // The whole payload (or each element of a top-level array, a branch of it) is tagged: no field path names it.
            throw Unresolvable($"the schema's root (itself, its items or a branch of it) is tagged {tag}, and a privacy path names fields, not the whole record; tag its fields instead");
        }

        WalkJson(json.Schemas.Root.RootNode, "", tag, paths, 0, ref jsonBudget, new HashSet<string>(StringComparer.Ordinal));
        return Once(paths);
    }

    /// <summary>
    /// Fails closed where a schema the references hide tags a field that what is read in its place does not: names resolve
    /// in one table per schema (see <see cref="ShadowedReference"/>), so a field only the hidden one tags would be stored
    /// in clear (a customer schema's own <c>address.json</c>, tagged, read as the order's untagged one). Compared node by
    /// node, not by walking paths: a JSON binding's tagged subschemas by pointer against those of the binding read; each
    /// Protobuf message of the hidden file (and its imports) against the message of that full name the schema resolves,
    /// as do two files that declare one message. Where what is read tags at least as much, its tags mask both places.
    /// </summary>
    private static void CheckHiddenSchemas(IParsedSchema schema, string tag)
    {
        if (schema is Formats.Protobuf.ProtobufParsedSchema protobuf)
        {
            foreach ((Google.Protobuf.Reflection.DescriptorProto kept, Google.Protobuf.Reflection.DescriptorProto dropped, string fullName) in protobuf.Types.HiddenMessages)
            {
                if (Formats.Protobuf.ConfluentMeta.FirstTagMissing(protobuf, dropped, protobuf, kept, tag) is { } field)
                {
                    throw Unresolvable($"two files of the schema declare the message {fullName.TrimStart('.')}, and the one read does not tag {field} {tag} as the other does; declare each message once");
                }
            }
        }

        ShadowedReferences? bindings = schema switch
        {
            ParsedJsonSchema json => json.Schemas.Bindings,
            Formats.Protobuf.ProtobufParsedSchema proto => proto.Bindings,
            _ => null,
        };
        if (bindings is null)
        {
            return;
        }

        if (bindings.Unwalkable is { } why)
        {
            throw Unresolvable($"{why}, and a field only a hidden one tags {tag} would be stored in clear; give each schema its own reference name");
        }

        foreach (ShadowedReference shadowed in bindings.Shadowed)
        {
            string? missed;
            try
            {
                missed = schema is Formats.Protobuf.ProtobufParsedSchema read
                    ? FirstProtobufTagMissing(read, shadowed.Shadowed, tag)
                    : FirstJsonTag(shadowed.Shadowed, tag);
            }
            catch (InvalidSchemaException e)
            {
                throw Unresolvable($"the schema's references bind '{shadowed.Name}' to two schemas, and subject '{shadowed.Shadowed.Subject}' version {shadowed.Shadowed.Version} does not parse on its own to compare their {tag} tags: {e.Message}");
            }

            if (missed is not null)
            {
                string first = shadowed.Used is { } used ? $"subject '{used.Subject}' version {used.Version}" : "a resource of the schema itself";
                string names = shadowed.ReadName is { } other ? $"the names '{other}' and '{shadowed.Name}', which resolve to one URI," : $"the name '{shadowed.Name}'";
                string unmatched = schema is Formats.Protobuf.ProtobufParsedSchema ? " where the first does not" : " (a tag in a JSON schema hidden so is not matched to the one read)";
                throw Unresolvable($"the schema's references bind {names} to two schemas: {first}, which every use of the name reads, and subject '{shadowed.Shadowed.Subject}' version {shadowed.Shadowed.Version}, which tags {missed} {tag}{unmatched}; give each schema its own reference name");
            }
        }
    }

    /// <summary>The first message field a hidden Protobuf binding (or a file it imports) tags that the schema's message of that name does not.</summary>
    private static string? FirstProtobufTagMissing(Formats.Protobuf.ProtobufParsedSchema schema, ResolvedReference hidden, string tag)
    {
        Formats.Protobuf.ProtobufParsedSchema parsed = Formats.Protobuf.ProtobufSchemaParser.Parse(hidden.SchemaText ?? string.Empty, hidden.References ?? [], normalize: false);
        foreach ((string fullName, Google.Protobuf.Reflection.DescriptorProto message) in parsed.Types.Messages)
        {
            // A message the schema does not declare cannot be reached from it, whatever it tags.
            if (schema.Types.Find(fullName)?.Message is { } read && Formats.Protobuf.ConfluentMeta.FirstTagMissing(parsed, message, schema, read, tag) is { } field)
            {
                return $"{fullName.TrimStart('.')}.{field}";
            }
        }

        return null;
    }

    /// <summary>
    /// Where a hidden JSON binding, or a schema it references, lists the tag (as "#pointer", with the reference it is in), or
    /// null. JSON subschemas are not matched to the binding read (a <c>$ref</c> moves what a tag applies to, and a pointer
    /// does not say which field it is), so any tag there fails the rule closed.
    /// </summary>
    private static string? FirstJsonTag(ResolvedReference hidden, string tag)
    {
        var pending = new Stack<(ResolvedReference Reference, int Depth)>();
        pending.Push((hidden, 0));
        for (int budget = MaxHiddenDocuments; pending.Count > 0; budget--)
        {
            (ResolvedReference reference, int depth) = pending.Pop();
            if (budget <= 0 || depth > SchemaLimits.MaxDepth)
            {
                return "(more referenced schemas than the check reads)";
            }

            if (FirstTaggedPointer(JsonSchemaFormat.ParseJson(reference.SchemaText ?? string.Empty, $"reference '{reference.Name}'"), tag, string.Empty) is { } found)
            {
                return ReferenceEquals(reference, hidden) ? $"#{found}" : $"#{found} of its reference '{reference.Name}'";
            }

            foreach (ResolvedReference child in reference.References ?? [])
            {
                pending.Push((child, depth + 1));
            }
        }

        return null;
    }

    /// <summary>Most schemas one hidden JSON binding's check reads (itself and the schemas it references).</summary>
    private const int MaxHiddenDocuments = 256;

    /// <summary>The JSON pointer of the first object (in document order) in a schema document whose <c>confluent:tags</c> lists the tag, or null.</summary>
    private static string? FirstTaggedPointer(JsonElement element, string tag, string pointer)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            if (HasTag(element, tag))
            {
                return pointer;
            }

            foreach (JsonProperty property in element.EnumerateObject())
            {
                if (FirstTaggedPointer(property.Value, tag, $"{pointer}/{JsonPointer.Escape(property.Name)}") is { } found)
                {
                    return found;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            foreach (JsonElement item in element.EnumerateArray())
            {
                if (FirstTaggedPointer(item, tag, $"{pointer}/{index++}") is { } found)
                {
                    return found;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Each path once, in the order found: two branches (union records, anyOf or then/else) may tag a field of the same
    /// name, and a path listed twice would be hashed twice, its value then unlike the same value hashed elsewhere.
    /// </summary>
    private static List<string> Once(List<string> paths) => paths.Count < 2 ? paths : [.. paths.Distinct(StringComparer.Ordinal)];

    /// <summary>Counts one step (a schema node entered) against the walk's budget: past it the tagged fields cannot all be found, so the caller fails closed.</summary>
    private static void Step(ref int budget)
    {
        PrivacyCheckBudget.Step();
        if (--budget < 0)
        {
            throw SchemaLimits.TaggedWalkTooLarge();
        }
    }

    /// <summary>Whether a JSON Schema property's <c>confluent:tags</c> lists the tag.</summary>
    private static bool HasTag(JsonElement element, string tag) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("confluent:tags", out JsonElement tags) && ListsTag(tags, tag);

    /// <summary>
    /// Whether <c>confluent:tags</c> lists the tag: an array of names, as Confluent writes it, or (read as tagged, since
    /// masking a field too many is safe and one too few is not) a single name.
    /// </summary>
    private static bool ListsTag(JsonElement tags, string tag) =>
        (tags.ValueKind == JsonValueKind.String && tags.ValueEquals(tag))
        || (tags.ValueKind == JsonValueKind.Array && tags.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.GetString() == tag));

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
                    if (AvroFieldHasTag(field, tag) || AvroTypeHasTag(field.Schema, tag))
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
                    if (AvroFieldHasTag(field, tag) || AvroTypeHasTag(field.Schema, tag) || AvroContainsTag(field.Schema, tag, seen, depth + 1, ref budget))
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

    /// <summary>A tagged Protobuf extension field: the decoder keeps extensions as unknown fields, which no path reaches.</summary>
    internal static InvalidOperationException ExtensionTagged(string extension, string tag) =>
        Unresolvable($"the extension field {extension} is tagged {tag}, and the gate keeps extension fields as sent (no privacy path reaches them); tag a declared field instead");

    /// <summary>Tagged fields inside the values of a map (keys are data, so no dotted path names them).</summary>
    internal static InvalidOperationException MapValueTagged(string mapPath, string tag) =>
        Unresolvable($"the values of the map {(mapPath.Length == 0 ? "(the record itself)" : mapPath)} hold fields tagged {tag}, which a dotted privacy path cannot name (map keys are data); name the tagged fields by path instead of the tag, and drop the map by its path");

    /// <summary>Whether a field's <c>confluent:tags</c> property (kept by the Avro library as JSON text) lists the tag.</summary>
    private static bool AvroFieldHasTag(Avro.Field field, string tag) => AvroPropertyListsTag(field.GetProperty("confluent:tags"), tag);

    /// <summary>Whether an Avro <c>confluent:tags</c> property (JSON text as the Avro library keeps it; null when absent) lists the tag.</summary>
    private static bool AvroPropertyListsTag(string? tags, string tag)
    {
        if (tags is null)
        {
            return false;
        }

        using JsonDocument document = JsonDocument.Parse(tags);
        return ListsTag(document.RootElement, tag);
    }

    /// <summary>
    /// Whether a field's type carries the tag itself (on the type, not the field: <c>{"type": "string", "confluent:tags":
    /// [...]}</c>), also as an array's items, a map's values or a union's branch: its field is then masked whole, as a JSON
    /// property tagged in an <c>anyOf</c> branch or its <c>items</c> is, since a field too many masked is safe and one too few
    /// is not. A named type's fields are not looked into here (the walk does that).
    /// </summary>
    private static bool AvroTypeHasTag(Avro.Schema type, string tag) => type switch
    {
        Avro.UnionSchema union => union.Schemas.Any(branch => AvroTypeHasTag(branch, tag)),
        Avro.ArraySchema array => AvroPropertyListsTag(array.GetProperty("confluent:tags"), tag) || AvroTypeHasTag(array.ItemSchema, tag),
        Avro.MapSchema map => AvroPropertyListsTag(map.GetProperty("confluent:tags"), tag) || AvroTypeHasTag(map.ValueSchema, tag),
        _ => AvroPropertyListsTag(type.GetProperty("confluent:tags"), tag),
    };

    /// <summary>Stands for a '.' inside a property name while a path is built (a name holding NUL itself is refused too: closed, not open).</summary>
    private const char DottedNameMark = '\0';

    private static string Shown(string prefix) => prefix.Length == 0 ? "(the record itself)" : prefix.Replace(DottedNameMark, '.');

    /// <summary>
    /// Walks a JSON Schema: properties, the <see cref="SameLevelSchemas"/> (array items, allOf/anyOf/oneOf branches,
    /// if/then/else...: their properties are at the same level), and <c>$ref</c>s, each not entered again inside itself.
    /// A <c>$ref</c> is resolved as the registry and the validator resolve it (<see cref="Referenced"/>), so the walk reads
    /// the very schema a record is checked against.
    /// </summary>
    private static void WalkJson(SchemaNode node, string prefix, string tag, List<string> paths, int depth, ref int budget, HashSet<string> walking)
    {
        Step(ref budget);
        JsonElement schema = node.Element;
        if (schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        CheckDepth(depth, prefix, tag);
        foreach (SchemaNode target in Referenced(node, prefix, tag))
        {
            if (walking.Add(target.Location))
            {
                WalkJson(target, prefix, tag, paths, depth + 1, ref budget, walking);
                walking.Remove(target.Location);
            }
            else if (JsonContainsTag(target, tag, prefix, [], depth + 1, ref budget))
            {
                throw Unresolvable($"{schema.GetProperty("$ref").GetString()} holds itself at {Shown(prefix)} and has fields tagged {tag}, which a dotted privacy path cannot name at every level; name the tagged fields by path instead of the tag, and drop {Shown(prefix)} by its path");
            }
        }

        // Property names are data, as map keys are: a tag on them names no field a dotted path can mask.
        if (schema.TryGetProperty("propertyNames", out JsonElement names) && JsonContainsTag(node.Child(names, "propertyNames"), tag, prefix, [], depth + 1, ref budget))
        {
            throw Unresolvable($"the property names of {Shown(prefix)} are tagged {tag}, and names are data, which a dotted privacy path cannot mask; drop {Shown(prefix)} by its path instead");
        }

        foreach (SchemaNode mapValues in MapValueSchemas(node))
        {
            if (JsonContainsTag(mapValues, tag, prefix, [], depth + 1, ref budget))
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
                SchemaNode child = node.Child(property.Value, "properties", property.Name);
                if (IsTagged(child, tag, path, depth + 1, ref budget))
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
                    WalkJson(child, path, tag, paths, depth + 1, ref budget, walking);
                }
            }
        }

        foreach (SchemaNode part in SameLevelSchemas(node))
        {
            WalkJson(part, prefix, tag, paths, depth + 1, ref budget, walking);
        }
    }

    /// <summary>
    /// Past the depth a decoded record can have, the walk cannot say what is tagged below: it fails (closed) rather than
    /// answer "nothing", since each <c>$ref</c> followed costs a level as well.
    /// </summary>
    private static void CheckDepth(int depth, string at, string tag)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            throw Unresolvable($"the schema nests more than {SchemaLimits.MaxDepth} levels (its $refs counted) at {Shown(at)}, so fields tagged {tag} below cannot all be found; name the tagged fields by path instead of the tag");
        }
    }

    /// <summary>
    /// The schemas the node's <c>$ref</c> names, resolved by the schema's own <see cref="JsonSchemaSet"/> (base URIs of
    /// <c>$id</c>s, anchors, the schemas it references by name), as registration resolves it; none without one. Where
    /// drafts disagree (a <c>$ref</c> beside an <c>$id</c>, a legacy <c>id</c>: the set reads a schema without
    /// <c>$schema</c> one way, the record validator as draft 7), a local pointer is also read from the document's root,
    /// and both are walked: masking a field too many is safe, one too few is not. A reference that leads nowhere, and the
    /// dynamic references (<c>$dynamicRef</c>, <c>$recursiveRef</c>, which a record's validation resolves), fail the walk:
    /// what they name may hold tagged fields.
    /// </summary>
    private static List<SchemaNode> Referenced(SchemaNode node, string at, string tag)
    {
        JsonElement schema = node.Element;
        foreach (string dynamic in (string[])["$dynamicRef", "$recursiveRef"])
        {
            if (schema.TryGetProperty(dynamic, out _))
            {
                throw Unresolvable($"the {dynamic} at {Shown(at)} is resolved only while a record is validated, so fields tagged {tag} behind it cannot be found ahead; name the tagged fields by path instead of the tag");
            }
        }

        if (!schema.TryGetProperty("$ref", out JsonElement reference))
        {
            return [];
        }

        string? text = reference.ValueKind == JsonValueKind.String ? reference.GetString() : null;
        SchemaNode resolved = (text is null ? null : node.Document.Set.Resolve(node.Document, node.Pointer, text))
            ?? throw Unresolvable($"the $ref '{text ?? reference.GetRawText()}' at {Shown(at)} cannot be followed, so fields tagged {tag} behind it cannot be found; name the tagged fields by path instead of the tag");
        List<SchemaNode> targets = [resolved];
        if (text!.StartsWith('#') && LocalPointer(node.Document, text) is { } local && local.Location != resolved.Location)
        {
            targets.Add(local);
        }

        return targets;
    }

    /// <summary>A <c>#</c> or <c>#/...</c> reference read from its document's root, as a reader that ignores <c>$id</c>s reads it.</summary>
    private static SchemaNode? LocalPointer(JsonSchemaDocument document, string reference)
    {
        string fragment;
        try
        {
            fragment = Uri.UnescapeDataString(reference[1..]);
        }
        catch (UriFormatException)
        {
            return null;
        }

        return fragment.Length == 0 || fragment[0] == '/' ? Formats.Json.JsonPointer.Navigate(document, fragment) : null;
    }

    /// <summary>
    /// The subschemas that describe the same value as <paramref name="node"/> or, for an array, its elements (which the
    /// rewriter walks one by one under the same path): <c>items</c> (one schema, or draft-07's tuple list),
    /// <c>prefixItems</c>, <c>additionalItems</c>, <c>allOf</c>/<c>anyOf</c>/<c>oneOf</c>, <c>if</c>/<c>then</c>/<c>else</c>
    /// and <c>dependentSchemas</c>. Not <c>not</c>: a tag on what a value must not be tags nothing it is.
    /// </summary>
    private static IEnumerable<SchemaNode> SameLevelSchemas(SchemaNode node)
    {
        JsonElement schema = node.Element;
        foreach (string keyword in (string[])["items", "prefixItems", "additionalItems", "unevaluatedItems", "contains", "allOf", "anyOf", "oneOf", "if", "then", "else"])
        {
            if (!schema.TryGetProperty(keyword, out JsonElement found))
            {
                continue;
            }

            if (found.ValueKind == JsonValueKind.Array)
            {
                int index = 0;
                foreach (JsonElement item in found.EnumerateArray())
                {
                    yield return node.Child(item, keyword, (index++).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            else
            {
                yield return node.Child(found, keyword);
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
                        yield return node.Child(dependent.Value, keyword, dependent.Name);
                    }
                }
            }
        }
    }

    /// <summary>The schemas of an object's members that no property names: <c>additionalProperties</c>, <c>unevaluatedProperties</c> and <c>patternProperties</c>.</summary>
    private static IEnumerable<SchemaNode> MapValueSchemas(SchemaNode node)
    {
        JsonElement schema = node.Element;
        foreach (string keyword in (string[])["additionalProperties", "unevaluatedProperties"])
        {
            if (schema.TryGetProperty(keyword, out JsonElement additional) && additional.ValueKind == JsonValueKind.Object)
            {
                yield return node.Child(additional, keyword);
            }
        }

        if (schema.TryGetProperty("patternProperties", out JsonElement patterns) && patterns.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty pattern in patterns.EnumerateObject())
            {
                yield return node.Child(pattern.Value, "patternProperties", pattern.Name);
            }
        }
    }

    /// <summary>Whether the tag is anywhere in a JSON Schema (each <c>$ref</c> looked into once).</summary>
    private static bool JsonContainsTag(SchemaNode node, string tag, string at, HashSet<string> seen, int depth, ref int budget)
    {
        Step(ref budget);
        JsonElement schema = node.Element;
        if (schema.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        CheckDepth(depth, at, tag);
        if (HasTag(schema, tag))
        {
            return true;
        }

        foreach (SchemaNode target in Referenced(node, at, tag))
        {
            if (seen.Add(target.Location) && JsonContainsTag(target, tag, at, seen, depth + 1, ref budget))
            {
                return true;
            }
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                if (JsonContainsTag(node.Child(property.Value, "properties", property.Name), tag, at, seen, depth + 1, ref budget))
                {
                    return true;
                }
            }
        }

        foreach (SchemaNode part in SameLevelSchemas(node).Concat(MapValueSchemas(node)))
        {
            if (JsonContainsTag(part, tag, at, seen, depth + 1, ref budget))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Whether a property's schema carries the tag itself, or through what it is made of: a <c>$ref</c> to a
    /// tagged definition (<c>"email": {"$ref": "#/$defs/Email"}</c>), a tagged <c>allOf</c> branch, a tagged <c>anyOf</c>
    /// or <c>oneOf</c> branch (<c>[{"type": "string", "confluent:tags": ["PII"]}, {"type": "null"}]</c>: the value may be
    /// the tagged kind, so it is masked whichever it is), tagged array <c>items</c> (every element is; one tagged tuple
    /// position masks every element), or any other of <see cref="SameLevelSchemas"/> tagged.
    /// </summary>
    private static bool IsTagged(SchemaNode node, string tag, string at, int depth, ref int budget, HashSet<string>? entered = null)
    {
        Step(ref budget);
        JsonElement schema = node.Element;
        // A schema met again inside itself (nested arrays of itself, "any JSON") adds nothing it did not say the first time.
        if (schema.ValueKind != JsonValueKind.Object || !(entered ??= new HashSet<string>(StringComparer.Ordinal)).Add(node.Location))
        {
            return false;
        }

        CheckDepth(depth, at, tag);
        if (HasTag(schema, tag))
        {
            return true;
        }

        foreach (SchemaNode target in Referenced(node, at, tag))
        {
            if (IsTagged(target, tag, at, depth + 1, ref budget, entered))
            {
                return true;
            }
        }

        foreach (SchemaNode part in SameLevelSchemas(node))
        {
            if (IsTagged(part, tag, at, depth + 1, ref budget, entered))
            {
                return true;
            }
        }

        return false;
    }
}
