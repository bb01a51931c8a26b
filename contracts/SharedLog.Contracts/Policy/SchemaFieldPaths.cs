using System.Text.Json;
using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Formats.Protobuf;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// Whether a schema declares a privacy rule's dotted field path, walked as <see cref="PrivacyRewriter"/> walks a
/// decoded record: by field name through records, objects and messages; through arrays, Avro unions and JSON Schema
/// combinators and local <c>$ref</c>s without a name. A level whose names are data (an Avro or Protobuf map, a JSON
/// object without <c>properties</c> or open to more) may hold any name, so a path through it counts as declared.
/// </summary>
public static class SchemaFieldPaths
{
    private const int MaxJsonVisits = 10_000;

    /// <summary>The messages of a Protobuf file whose tag walks apply checks (see <see cref="FirstUnresolvableTag"/>).</summary>
    public const int MaxProtobufRootsChecked = 1_000;

    /// <summary>
    /// One problem per privacy rule whose field path none of the contract's schemas declares: as written it masks
    /// nothing, and a misspelt name leaves the field it meant stored in clear. And one per <c>hash</c> (by path, or by tag
    /// through the fields each schema tags) of a field a schema declares with a type a hash cannot replace (a number, an
    /// enum, a record...): every record written with that schema would fail its privacy step at produce time.
    /// <paramref name="schemasOf"/> gives the schemas a side's records may carry (key: true), or null when they cannot
    /// be known (a topic pattern, a record name strategy, nothing registered yet); then nothing is checked, so a
    /// contract is never refused for what cannot be seen. With <paramref name="maskingNothingOnly"/>, only the rules that
    /// would mask nothing (a path no schema declares, a tag no schema carries): the gate's check of a contract applied
    /// before its schemas, where the other problems fail their records one by one already.
    /// </summary>
    public static IReadOnlyList<string> PrivacyPathProblems(ContractDefinition definition, Func<SchemaRequirement, bool, IReadOnlyList<IParsedSchema>?> schemasOf, bool maskingNothingOnly = false)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(schemasOf);
        if (definition.Privacy.Count == 0)
        {
            return [];
        }

        var schemas = new List<IParsedSchema>();
        var distinct = new HashSet<IParsedSchema>(ReferenceEqualityComparer.Instance);
        foreach ((SchemaRequirement? requirement, bool isKey) in new[] { (definition.Key, true), (definition.Value, false) })
        {
            if (requirement is null)
            {
                continue;
            }

            if (schemasOf(requirement, isKey) is not { Count: > 0 } known)
            {
                return [];
            }

            // A key and a value bound to the same subject admit the same schemas: each is checked once.
            schemas.AddRange(known.Where(distinct.Add));
        }

        return WithinBudget(
            () => Problems(definition, schemas, maskingNothingOnly),
            $"privacy: checking its {definition.Privacy.Count} rule(s) against the {schemas.Count} schema(s) the contract admits enters more than {PrivacyCheckBudget.MaxStepsPerCheck:N0} schema nodes, so the contract is refused; admit fewer schema versions (versions: on the key or value) or use fewer privacy rules");
    }

    /// <summary>
    /// One problem per name a rule reads from <c>value</c> or <c>key</c> (<c>value.ammount</c>) that none of the schemas
    /// the side admits declares: the rule would be an error on every record that reaches the read, so every record would
    /// fail the contract. A read under a <c>has()</c> of the same name or a shorter one (<c>has(value.discount) &amp;&amp;
    /// value.discount &gt; 0</c>) is left alone: it is written for records that may lack the field. Levels whose names are
    /// data (maps, JSON objects open to more properties) declare any name, as for privacy paths. A side whose schemas
    /// cannot be known (<paramref name="schemasOf"/> null or empty) is not checked; nor are rules that do not compile
    /// (<see cref="Gate.ContractGate.CompileProblems"/> reports those).
    /// </summary>
    public static IReadOnlyList<string> RuleFieldProblems(ContractDefinition definition, Func<SchemaRequirement, bool, IReadOnlyList<IParsedSchema>?> schemasOf)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(schemasOf);
        var reads = new List<(string Rule, bool IsKey, IReadOnlyList<string> Names)>();
        foreach (FieldRuleDefinition rule in definition.Rules)
        {
            Rules.CompiledRule compiled;
            try
            {
                compiled = Rules.CelRule.Compile(rule.Expression);
            }
            catch (Rules.RuleSyntaxException)
            {
                continue;
            }

            foreach (IReadOnlyList<string> names in compiled.NamesRead)
            {
                if (names.Count >= 2 && names[0] is "value" or "key" && !IsTested(names, compiled.NamesTested))
                {
                    reads.Add((rule.Name, names[0] == "key", names));
                }
            }
        }

        if (reads.Count == 0)
        {
            return [];
        }

        IReadOnlyList<IParsedSchema>? valueSchemas = definition.Value is null ? null : schemasOf(definition.Value, false);
        IReadOnlyList<IParsedSchema>? keySchemas = definition.Key is null ? null : schemasOf(definition.Key, true);
        return WithinBudget(
            () =>
            {
                var problems = new List<string>();
                var reported = new HashSet<string>(StringComparer.Ordinal);
                foreach ((string rule, bool isKey, IReadOnlyList<string> names) in reads)
                {
                    // A key without a key schema is text, and a side whose schemas are unknown cannot be checked.
                    if ((isKey ? keySchemas : valueSchemas) is not { Count: > 0 } schemas)
                    {
                        continue;
                    }

                    string[] path = [.. names.Skip(1)];
                    string written = string.Join('.', names);
                    if (!schemas.Any(s => Declares(s, path, unlistedJsonMembersOpen: true)) && reported.Add($"{rule}\n{written}"))
                    {
                        problems.Add($"rules[{rule}]: reads {written}, but no {names[0]} schema the contract admits declares {string.Join('.', path)}, so the rule would be an error (no such key) on every record that reaches it; check the name (each level of a dotted name is a field name), or guard the read with has({written}) if the field is yet to come");
                    }
                }

                return problems;
            },
            $"rules: checking the names its rules read against the schemas the contract admits enters more than {PrivacyCheckBudget.MaxStepsPerCheck:N0} schema nodes, so the contract is refused; admit fewer schema versions (versions: on the key or value)");
    }

    /// <summary>Whether a <c>has()</c> of <paramref name="names"/> or of a shorter name it starts with guards the read.</summary>
    private static bool IsTested(IReadOnlyList<string> names, IReadOnlyList<IReadOnlyList<string>> tested)
    {
        foreach (IReadOnlyList<string> test in tested)
        {
            if (test.Count <= names.Count && Enumerable.Range(0, test.Count).All(i => string.Equals(test[i], names[i], StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Runs a check of schema walks under <see cref="PrivacyCheckBudget"/>; past it, the one problem <paramref name="exceeded"/>.</summary>
    private static List<string> WithinBudget(Func<List<string>> check, string exceeded)
    {
        PrivacyCheckBudget.Start();
        try
        {
            return check();
        }
        catch (PrivacyCheckBudget.ExceededException)
        {
            return [exceeded];
        }
        finally
        {
            PrivacyCheckBudget.Stop();
        }
    }

    private static string UntaggedProblem(ContractDefinition definition, PrivacyRuleDefinition rule) =>
        $"privacy[{rule.Target}]: no {(definition.Key is null ? "value" : "key or value")} schema the contract admits tags a field '{rule.Tag}', so the rule would mask nothing; check the tag (tags are case-sensitive)";

    private static List<string> Problems(ContractDefinition definition, List<IParsedSchema> schemas, bool maskingNothingOnly)
    {
        var problems = new List<string>();
        var compiledJson = new Dictionary<IParsedSchema, CompiledJsonValidator?>(ReferenceEqualityComparer.Instance);
        foreach (PrivacyRuleDefinition rule in definition.Privacy)
        {
            if (rule.FieldPath is { } path && !schemas.Exists(s => Declares(s, path.Split('.'))))
            {
                problems.Add($"privacy[{path}]: no {(definition.Key is null ? "value" : "key or value")} schema the contract admits declares this field, so the rule would mask nothing; check the name (each level of a dotted path is a field name)");
                continue;
            }

            if (maskingNothingOnly)
            {
                // A tag whose fields cannot be resolved fails its records at the gate already (fail closed).
                if (rule.Tag is { } carried && FirstUnresolvableTag(schemas, carried) is null && !schemas.Exists(s => Tags(s, carried)))
                {
                    problems.Add(UntaggedProblem(definition, rule));
                }

                continue;
            }

            if (rule.Tag is not null && FirstUnresolvableTag(schemas, rule.Tag) is { } unresolvable)
            {
                // Known now rather than at the first record, which the gate would refuse (fail closed) for the same reason.
                problems.Add($"privacy[{rule.Target}]: a schema the contract admits: {unresolvable}");
                continue;
            }

            if (rule.Tag is { } tag && !schemas.Exists(s => Tags(s, tag)))
            {
                // As a misspelt path: the rule would mask nothing and leave the field it meant in clear.
                problems.Add(UntaggedProblem(definition, rule));
                continue;
            }

            if (rule.Action == PrivacyAction.Hash && FirstUnhashable(schemas, rule) is { } found)
            {
                problems.Add($"privacy[{rule.Target}]: hash replaces string and bytes values, but a schema the contract admits declares {found.Path} as {found.Type}, so its records would be refused; redact or drop it instead");
            }
            else if (rule.Action == PrivacyAction.Drop && FirstUndroppableAvro(schemas, rule) is { } kept)
            {
                problems.Add($"privacy[{rule.Target}]: drop leaves an Avro field at its default or null, but an Avro schema the contract admits declares {kept} without a default and not nullable, so its records would be refused; give the field a default or a null branch, or redact or hash it instead");
            }
            else if (rule.Action == PrivacyAction.Drop && FirstUndroppableProtobuf(schemas, rule) is { } required)
            {
                problems.Add($"privacy[{rule.Target}]: drop removes a Protobuf field, but a proto2 schema the contract admits declares {required} required, so its records would be refused; redact or hash it instead");
            }
            else if (FirstJsonMaskingProblem(schemas, rule, compiledJson) is { } broken)
            {
                problems.Add($"privacy[{rule.Target}]: a JSON schema the contract admits constrains {broken.Path} so that masked records would not match it: {broken.Problem}; every such record would be a bad record (masked_schema_mismatch); use another action or relax the schema");
            }
        }

        return problems;
    }

    /// <summary>The first field of a JSON schema (in the compiled subset) whose masked value the schema would refuse, and why.</summary>
    private static (string Path, string Problem)? FirstJsonMaskingProblem(List<IParsedSchema> schemas, PrivacyRuleDefinition rule, Dictionary<IParsedSchema, CompiledJsonValidator?> compiledJson)
    {
        foreach (IParsedSchema schema in schemas)
        {
            if (schema is not ParsedJsonSchema { Schemas.Documents.Count: 1 } json)
            {
                continue;
            }

            // Compiled once per check, not once per rule.
            if (!compiledJson.TryGetValue(schema, out CompiledJsonValidator? compiled))
            {
                compiled = CompiledJsonValidator.TryCompile(json.Schemas.Root.Root, assertFormat: false);
                compiledJson.Add(schema, compiled);
            }

            if (compiled is null)
            {
                continue;
            }

            foreach (string path in PathsOf(schema, rule))
            {
                if (compiled.MaskingProblem(path.Split('.'), rule.Action) is { } problem)
                {
                    return (path, problem);
                }
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="schema"/> tags any field with <paramref name="tag"/> (for Protobuf, in any message of the file or a message its fields hold).</summary>
    private static bool Tags(IParsedSchema schema, string tag) => schema is Formats.Protobuf.ProtobufParsedSchema protobuf
        ? Formats.Protobuf.ConfluentMeta.AnyFieldTagged(protobuf, tag)
        : SchemaTags.PathsWithTag(schema, tag).Count > 0;

    /// <summary>Why the fields a tag names cannot all be found in one of the schemas (a walk past its limits), or null.</summary>
    private static string? FirstUnresolvableTag(List<IParsedSchema> schemas, string tag)
    {
        foreach (IParsedSchema schema in schemas)
        {
            // A Protobuf record may name any message of its file, nested ones too: each is walked, not only the first, up to
            // MaxProtobufRootsChecked (each walk may take its whole step budget: 25,600 messages took 15 s at apply). Past
            // them the gate walks a record's message at its first record and refuses it if the walk is past its limits.
            string?[] roots = schema is Formats.Protobuf.ProtobufParsedSchema protobuf
                ? [.. protobuf.RecordMessageFullNames.Take(MaxProtobufRootsChecked)]
                : [null];
            foreach (string? root in roots)
            {
                try
                {
                    SchemaTags.PathsWithTag(schema, tag, root);
                }
                catch (InvalidOperationException e)
                {
                    return e.Message;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The paths <paramref name="rule"/> masks in <paramref name="schema"/>: its field path, or the fields tagged with its tag;
    /// none when the tag walk goes past its limits (which <see cref="FirstUnresolvableTag"/> reports).
    /// </summary>
    private static IReadOnlyList<string> PathsOf(IParsedSchema schema, PrivacyRuleDefinition rule)
    {
        try
        {
            return rule.FieldPath is { } path ? [path] : SchemaTags.PathsWithTag(schema, rule.Tag!);
        }
        catch (InvalidOperationException)
        {
            return [];
        }
    }

    /// <summary>The first Avro field the rule drops that has neither a default nor a null branch to be written as (the codec refuses such a record).</summary>
    private static string? FirstUndroppableAvro(List<IParsedSchema> schemas, PrivacyRuleDefinition rule)
    {
        foreach (IParsedSchema schema in schemas)
        {
            if (schema is not AvroParsedSchema avro)
            {
                continue;
            }

            foreach (string path in PathsOf(schema, rule))
            {
                if (!DroppableAvro(avro.Schema, path.Split('.'), 0, 0, []))
                {
                    return path;
                }
            }
        }

        return null;
    }

    /// <summary>Whether every field the path reaches (through unions and arrays) can be dropped: it has a default, or null is one of its branches.</summary>
    private static bool DroppableAvro(Avro.Schema type, IReadOnlyList<string> names, int index, int depth, HashSet<AvroStep> seen)
    {
        PrivacyCheckBudget.Step();
        if (depth > SchemaLimits.MaxDepth || !seen.Add(new AvroStep(type, index, 0)))
        {
            return true; // deeper than decoding goes, or a route walked already
        }

        return type switch
        {
            Avro.UnionSchema union => union.Schemas.All(branch => DroppableAvro(branch, names, index, depth + 1, seen)),
            Avro.ArraySchema array => DroppableAvro(array.ItemSchema, names, index, depth + 1, seen),
            Avro.RecordSchema record when record.TryGetField(names[index], out Avro.Field? field) => index < names.Count - 1
                ? DroppableAvro(field.Schema, names, index + 1, depth + 1, seen)
                : field.DefaultValue is not null || (field.Schema is Avro.UnionSchema nullable && nullable.Schemas.Any(s => s.Tag == Avro.Schema.Type.Null)),
            _ => true,
        };
    }

    /// <summary>The first field the rule hashes whose declared type a hash cannot replace, in any of the schemas.</summary>
    private static (string Path, string Type)? FirstUnhashable(List<IParsedSchema> schemas, PrivacyRuleDefinition rule)
    {
        foreach (IParsedSchema schema in schemas)
        {
            foreach (string path in PathsOf(schema, rule))
            {
                if (UnhashableType(schema, path.Split('.')) is { } type)
                {
                    return (path, type);
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The type <paramref name="schema"/> declares at <paramref name="names"/> when a hash cannot replace it (only strings,
    /// bytes, uuids and 32-byte fixeds can be: arrays of them element by element); null when it can, or when the schema does
    /// not tell (not declared, map values, JSON <c>allOf</c> or no <c>type</c>; a JSON <c>anyOf</c>/<c>oneOf</c> at the path is read branch by branch).
    /// </summary>
    public static string? UnhashableType(IParsedSchema schema, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return ByFormat(
            schema,
            avro => UnhashableAvro(avro.Schema, names, 0, 0, []),
            protobuf => ProtobufFieldProblem(protobuf, protobuf.File.MessageTypes, names, 0, static field =>
                field.type is Google.Protobuf.Reflection.FieldDescriptorProto.Type.TypeString or Google.Protobuf.Reflection.FieldDescriptorProto.Type.TypeBytes
                    ? null
                    : field.type.ToString()["Type".Length..].ToLowerInvariant()),
            json => UnhashableJson(json, json, names, 0, 0, []),
            unreadableJson: null);
    }

    /// <summary>Walks a schema by its language: Avro, Protobuf, or JSON Schema (parsed bounded; <paramref name="unreadableJson"/> when it cannot be).</summary>
    private static T ByFormat<T>(IParsedSchema schema, Func<AvroParsedSchema, T> avro, Func<ProtobufParsedSchema, T> protobuf, Func<JsonElement, T> json, T unreadableJson)
    {
        ArgumentNullException.ThrowIfNull(schema);
        switch (schema)
        {
            case AvroParsedSchema avroSchema:
                return avro(avroSchema);
            case ProtobufParsedSchema protobufSchema:
                return protobuf(protobufSchema);
            case ParsedJsonSchema parsedJson:
                // Already parsed when registered: a contract's every privacy rule walks every schema it admits.
                return json(parsedJson.Schemas.Root.Root);
            default:
                try
                {
                    using JsonDocument document = JsonDocument.Parse(schema.Text, new JsonDocumentOptions { MaxDepth = SchemaLimits.MaxDepth });
                    return json(document.RootElement);
                }
                catch (JsonException)
                {
                    return unreadableJson;
                }
        }
    }

    /// <summary>
    /// One step of an Avro walk along a path: a type at a level of the path, at a nesting depth. The answer from there is the
    /// same however the walk got there, so each is worked out once: a recursive type whose unions hold it again
    /// (<c>["null", "R0", "R1"]</c>) would otherwise be walked once per route, doubling with every level of the path. The
    /// depth is part of it because the depth limit cuts a deep route short where a shallower one to the same type goes on.
    /// </summary>
    private readonly record struct AvroStep(Avro.Schema Type, int Index, int Depth)
    {
        public bool Equals(AvroStep other) => ReferenceEquals(Type, other.Type) && Index == other.Index && Depth == other.Depth;

        public override int GetHashCode() => HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Type), Index, Depth);
    }

    private static string? UnhashableAvro(Avro.Schema type, IReadOnlyList<string> names, int index, int depth, Dictionary<AvroStep, string?> known)
    {
        PrivacyCheckBudget.Step();
        if (depth > SchemaLimits.MaxDepth)
        {
            return null;
        }

        var step = new AvroStep(type, index, depth);
        if (known.TryGetValue(step, out string? found))
        {
            return found;
        }

        known[step] = null; // while under way: a route back here adds nothing new
        string? FirstOfBranches(Avro.UnionSchema union)
        {
            foreach (Avro.Schema branch in union.Schemas)
            {
                if (UnhashableAvro(branch, names, index, depth + 1, known) is { } unhashable)
                {
                    return unhashable;
                }
            }

            return null;
        }

        found = index == names.Count
            ? type switch
            {
                // A value in any branch but null may come: each must be hashable.
                Avro.UnionSchema union => FirstOfBranches(union),
                Avro.ArraySchema array => UnhashableAvro(array.ItemSchema, names, index, depth + 1, known),
                Avro.LogicalSchema logical when logical.LogicalTypeName == "uuid" => null,
                Avro.LogicalSchema logical => logical.LogicalTypeName,
                Avro.FixedSchema { Size: 32 } => null,
                Avro.FixedSchema fixedType => $"fixed of {fixedType.Size} bytes",
                Avro.PrimitiveSchema { Tag: Avro.Schema.Type.String or Avro.Schema.Type.Bytes or Avro.Schema.Type.Null } => null,
                _ => type.Tag.ToString().ToLowerInvariant(),
            }
            : type switch
            {
                Avro.UnionSchema union => FirstOfBranches(union),
                Avro.ArraySchema array => UnhashableAvro(array.ItemSchema, names, index, depth + 1, known),
                Avro.RecordSchema record when record.TryGetField(names[index], out Avro.Field? field) => UnhashableAvro(field.Schema, names, index + 1, depth + 1, known),
                _ => null,
            };
        known[step] = found;
        return found;
    }

    /// <summary>
    /// What <paramref name="problem"/> says of the field the path names, in the first message of the file (nested ones too,
    /// since records may name any) where it says something; null when none does.
    /// </summary>
    private static string? ProtobufFieldProblem(ProtobufParsedSchema schema, List<Google.Protobuf.Reflection.DescriptorProto> messages, IReadOnlyList<string> names, int depth, Func<Google.Protobuf.Reflection.FieldDescriptorProto, string?> problem)
    {
        foreach (Google.Protobuf.Reflection.DescriptorProto message in messages)
        {
            if (ProtobufFieldProblemIn(schema, message, names, 0, problem) is { } found)
            {
                return found;
            }

            if (depth < SchemaLimits.MaxDepth && ProtobufFieldProblem(schema, message.NestedTypes, names, depth + 1, problem) is { } nested)
            {
                return nested;
            }
        }

        return null;
    }

    private static string? ProtobufFieldProblemIn(ProtobufParsedSchema schema, Google.Protobuf.Reflection.DescriptorProto message, IReadOnlyList<string> names, int index, Func<Google.Protobuf.Reflection.FieldDescriptorProto, string?> problem)
    {
        PrivacyCheckBudget.Step();
        if (index > SchemaLimits.MaxDepth || message.Fields.Find(f => f.Name == names[index]) is not { } field)
        {
            return null;
        }

        if (index == names.Count - 1)
        {
            return problem(field);
        }

        if (field.type != Google.Protobuf.Reflection.FieldDescriptorProto.Type.TypeMessage || schema.Types.Find(field.TypeName)?.Message is not { } nested)
        {
            return null;
        }

        if (!ProtobufTypeIndex.IsMapEntry(nested))
        {
            return ProtobufFieldProblemIn(schema, nested, names, index + 1, problem);
        }

        // A path names a map's entry by its key (m.k1), so the next name is a key and the entry's value field stands for it.
        if (nested.Fields.Find(f => f.Number == 2) is not { } value)
        {
            return null;
        }

        if (index + 1 == names.Count - 1)
        {
            return problem(value);
        }

        return value.type == Google.Protobuf.Reflection.FieldDescriptorProto.Type.TypeMessage && schema.Types.Find(value.TypeName)?.Message is { } valueMessage && !ProtobufTypeIndex.IsMapEntry(valueMessage)
            ? ProtobufFieldProblemIn(schema, valueMessage, names, index + 2, problem)
            : null;
    }

    /// <summary>The first field the rule drops that a proto2 schema declares <c>required</c> (the codec refuses such a record).</summary>
    private static string? FirstUndroppableProtobuf(List<IParsedSchema> schemas, PrivacyRuleDefinition rule)
    {
        foreach (IParsedSchema schema in schemas)
        {
            if (schema is not ProtobufParsedSchema protobuf)
            {
                continue;
            }

            foreach (string path in PathsOf(schema, rule))
            {
                if (ProtobufFieldProblem(protobuf, protobuf.File.MessageTypes, path.Split('.'), 0, static field => field.label == Google.Protobuf.Reflection.FieldDescriptorProto.Label.LabelRequired ? "required" : null) is not null)
                {
                    return path;
                }
            }
        }

        return null;
    }

    /// <param name="refs">What each <c>$ref</c> gave at each path index and depth: <c>$ref</c>s under combinators can name each
    /// other (two branches each naming the next definition doubled the walk per level), so each is followed once per index
    /// and depth (the depth limit cuts a deep route short where a shallower one to the same ref goes on). One met again
    /// while it is being followed (it names itself) adds nothing its other branches do not.</param>
    private static string? UnhashableJson(JsonElement schema, JsonElement root, IReadOnlyList<string> names, int index, int depth, Dictionary<(string Ref, int Index, int Depth), string?> refs)
    {
        PrivacyCheckBudget.Step();
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String)
        {
            (string, int, int) key = (reference.GetString()!, index, depth);
            if (refs.TryGetValue(key, out string? known))
            {
                return known;
            }

            refs[key] = null;
            return refs[key] = JsonPointer(root, key.Item1) is { } target ? UnhashableJson(target, root, names, index, depth + 1, refs) : null;
        }

        if (index == names.Count)
        {
            // An array's elements are hashed one by one; otherwise a declared type without "string" cannot be hashed.
            if (schema.TryGetProperty("items", out JsonElement items) && items.ValueKind == JsonValueKind.Object)
            {
                return UnhashableJson(items, root, names, index, depth + 1, refs);
            }

            string[] types;
            if (schema.TryGetProperty("type", out JsonElement type))
            {
                types = type.ValueKind switch
                {
                    JsonValueKind.String => [type.GetString()!],
                    JsonValueKind.Array => [.. type.EnumerateArray().Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!)],
                    _ => [],
                };
            }
            else
            {
                // Without "type", an enum or const says what its values are.
                IEnumerable<JsonElement> allowed = schema.TryGetProperty("const", out JsonElement constant) ? [constant]
                    : schema.TryGetProperty("enum", out JsonElement values) && values.ValueKind == JsonValueKind.Array ? values.EnumerateArray()
                    : [];
                types = [.. allowed.Select(v => v.ValueKind switch
                {
                    JsonValueKind.String => "string",
                    JsonValueKind.Null => "null",
                    JsonValueKind.Number => "number",
                    JsonValueKind.True or JsonValueKind.False => "boolean",
                    JsonValueKind.Array => "array",
                    _ => "object",
                }).Distinct()];
            }

            // As for Avro's unions: a type besides string (and null) is a value the hash would refuse, record by record.
            var unhashable = new List<string>(types.Where(t => t is not ("string" or "null")));
            if (types.Length == 0 && OnlyCombinator(schema) is { } branches)
            {
                // A property with anyOf or oneOf alone is masked whole (a tag on one branch masks it): each branch's type is
                // one its values may have, so a branch the hash would refuse is a refused record, as a union branch is in Avro.
                // Beside other keywords that may rule a branch out (allOf, not, the other combinator), the schema does not tell.
                foreach (JsonElement branch in branches.EnumerateArray())
                {
                    foreach (string found in UnhashableJson(branch, root, names, index, depth + 1, refs)?.Split(" or ") ?? [])
                    {
                        if (!unhashable.Contains(found))
                        {
                            unhashable.Add(found);
                        }
                    }
                }
            }

            return unhashable.Count == 0 ? null : string.Join(" or ", unhashable);
        }

        if (schema.TryGetProperty("items", out JsonElement elementSchema) && elementSchema.ValueKind == JsonValueKind.Object
            && !schema.TryGetProperty("properties", out _))
        {
            return UnhashableJson(elementSchema, root, names, index, depth + 1, refs);
        }

        return schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object
            && properties.TryGetProperty(names[index], out JsonElement property)
            ? UnhashableJson(property, root, names, index + 1, depth + 1, refs)
            : null;
    }

    /// <summary>The branches of a schema's <c>anyOf</c> or <c>oneOf</c> when that is its only combinator (no allOf, not, if).</summary>
    private static JsonElement? OnlyCombinator(JsonElement schema)
    {
        JsonElement? only = null;
        foreach (string combinator in (ReadOnlySpan<string>)["anyOf", "oneOf", "allOf", "not", "if"])
        {
            if (schema.TryGetProperty(combinator, out JsonElement found))
            {
                if (only is not null || combinator is not ("anyOf" or "oneOf") || found.ValueKind != JsonValueKind.Array)
                {
                    return null;
                }

                only = found;
            }
        }

        return only;
    }

    /// <summary>
    /// Whether <paramref name="schema"/> declares the field path <paramref name="names"/> (one field name per level). With
    /// <paramref name="unlistedJsonMembersOpen"/>, a JSON object that lists its properties without closing them
    /// (<c>additionalProperties: false</c>) declares any other name too, as the records it admits may carry one; privacy
    /// paths hold to the listed names, where a misspelt one would leave a field in clear.
    /// </summary>
    public static bool Declares(IParsedSchema schema, IReadOnlyList<string> names, bool unlistedJsonMembersOpen = false)
    {
        ArgumentNullException.ThrowIfNull(names);
        return ByFormat(
            schema,
            avro => DeclaresAvro(avro.Schema, names, 0, 0, []),
            // The record's message is chosen per record (Confluent's message indexes), nested ones too: any will do.
            protobuf => AnyMessageDeclares(protobuf, protobuf.File.MessageTypes, names, 0),
            json =>
            {
                int budget = MaxJsonVisits;
                return DeclaresJson(json, json, names, 0, 0, ref budget, unlistedJsonMembersOpen);
            },
            unreadableJson: true);
    }

    private static bool DeclaresAvro(Avro.Schema type, IReadOnlyList<string> names, int index, int depth, Dictionary<AvroStep, bool> known)
    {
        PrivacyCheckBudget.Step();
        if (index == names.Count || depth > SchemaLimits.MaxDepth)
        {
            return true;
        }

        var step = new AvroStep(type, index, depth);
        if (known.TryGetValue(step, out bool declares))
        {
            return declares;
        }

        known[step] = false; // while under way: a route back here adds nothing new
        declares = false;
        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    if (DeclaresAvro(branch, names, index, depth + 1, known))
                    {
                        declares = true;
                        break;
                    }
                }

                break;
            case Avro.ArraySchema array:
                declares = DeclaresAvro(array.ItemSchema, names, index, depth + 1, known);
                break;
            case Avro.MapSchema:
                declares = true;
                break;
            case Avro.RecordSchema record:
                declares = record.TryGetField(names[index], out Avro.Field? field) && DeclaresAvro(field.Schema, names, index + 1, depth + 1, known);
                break;
        }

        known[step] = declares;
        return declares;
    }

    private static bool AnyMessageDeclares(ProtobufParsedSchema schema, List<Google.Protobuf.Reflection.DescriptorProto> messages, IReadOnlyList<string> names, int depth)
    {
        foreach (Google.Protobuf.Reflection.DescriptorProto message in messages)
        {
            if (DeclaresProtobuf(schema, message, names, 0)
                || (depth < SchemaLimits.MaxDepth && AnyMessageDeclares(schema, message.NestedTypes, names, depth + 1)))
            {
                return true;
            }
        }

        return false;
    }

    private static bool DeclaresProtobuf(ProtobufParsedSchema schema, Google.Protobuf.Reflection.DescriptorProto message, IReadOnlyList<string> names, int index)
    {
        PrivacyCheckBudget.Step();
        if (index == names.Count || index > SchemaLimits.MaxDepth)
        {
            return true;
        }

        Google.Protobuf.Reflection.FieldDescriptorProto? field = message.Fields.Find(f => f.Name == names[index]);
        if (field is null)
        {
            return false;
        }

        if (index == names.Count - 1)
        {
            return true;
        }

        // A Timestamp or Duration is read as its time, masked whole: its seconds and nanos are no path of their own.
        if (field.type != Google.Protobuf.Reflection.FieldDescriptorProto.Type.TypeMessage || field.TypeName is ".google.protobuf.Timestamp" or ".google.protobuf.Duration")
        {
            return false;
        }

        // A message type this schema does not hold (an import it was not given) cannot be looked into.
        return schema.Types.Find(field.TypeName)?.Message is not { } nested || ProtobufTypeIndex.IsMapEntry(nested) || DeclaresProtobuf(schema, nested, names, index + 1);
    }

    private static bool DeclaresJson(JsonElement schema, JsonElement root, IReadOnlyList<string> names, int index, int depth, ref int budget, bool unlistedOpen)
    {
        PrivacyCheckBudget.Step();
        // Past the depth or the budget (references and combinators can multiply the walk) nothing can be told: declared.
        if (index == names.Count || depth > SchemaLimits.MaxDepth || --budget < 0)
        {
            return true;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            // true admits anything; false admits nothing.
            return schema.ValueKind != JsonValueKind.False;
        }

        // A subschema with its own $id is a resource of its own: its local references ("#/$defs/x") name its parts.
        if (depth > 0 && schema.TryGetProperty("$id", out JsonElement id) && id.ValueKind == JsonValueKind.String)
        {
            root = schema;
        }

        bool shaped = false;
        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String)
        {
            shaped = true;
            // A reference to another schema document cannot be followed here.
            if (JsonPointer(root, reference.GetString()!) is not { } target || DeclaresJson(target, root, names, index, depth + 1, ref budget, unlistedOpen))
            {
                return true;
            }
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            shaped = true;
            if (properties.TryGetProperty(names[index], out JsonElement property) && DeclaresJson(property, root, names, index + 1, depth + 1, ref budget, unlistedOpen))
            {
                return true;
            }
        }

        // Members beyond the declared ones, with a schema or explicitly allowed: their names are data.
        if (schema.TryGetProperty("patternProperties", out _) || Opens(schema, "additionalProperties") || Opens(schema, "unevaluatedProperties"))
        {
            return true;
        }

        // JSON Schema admits members an object does not list unless it says otherwise: where that is the question (a rule's
        // read), a listing object that does not close itself declares any name.
        if (unlistedOpen && schema.TryGetProperty("properties", out _) && !Closes(schema, "additionalProperties") && !Closes(schema, "unevaluatedProperties")
            && !(schema.TryGetProperty("type", out JsonElement listedType) && !AdmitsObject(listedType)))
        {
            return true;
        }

        // Subschemas that describe this same value (a field declared only under then/else or a dependency still exists).
        foreach (string keyword in (ReadOnlySpan<string>)["items", "prefixItems", "additionalItems", "contains", "allOf", "anyOf", "oneOf", "if", "then", "else"])
        {
            if (!schema.TryGetProperty(keyword, out JsonElement branches))
            {
                continue;
            }

            shaped = true;
            if (branches.ValueKind != JsonValueKind.Array)
            {
                if (DeclaresJson(branches, root, names, index, depth + 1, ref budget, unlistedOpen))
                {
                    return true;
                }

                continue;
            }

            foreach (JsonElement branch in branches.EnumerateArray())
            {
                if (DeclaresJson(branch, root, names, index, depth + 1, ref budget, unlistedOpen))
                {
                    return true;
                }
            }
        }

        foreach (string keyword in (ReadOnlySpan<string>)["dependentSchemas", "dependencies"])
        {
            if (schema.TryGetProperty(keyword, out JsonElement dependencies) && dependencies.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty dependency in dependencies.EnumerateObject())
                {
                    // dependencies' arrays name required members, not subschemas.
                    if (dependency.Value.ValueKind == JsonValueKind.Object && DeclaresJson(dependency.Value, root, names, index, depth + 1, ref budget, unlistedOpen))
                    {
                        return true;
                    }
                }
            }
        }

        // Nothing shapes this level: an object of any members, unless its type says it is no object at all.
        return !shaped && !(schema.TryGetProperty("type", out JsonElement type) && !AdmitsObject(type));
    }

    private static bool Opens(JsonElement schema, string keyword) =>
        schema.TryGetProperty(keyword, out JsonElement value) && value.ValueKind is JsonValueKind.Object or JsonValueKind.True;

    private static bool Closes(JsonElement schema, string keyword) =>
        schema.TryGetProperty(keyword, out JsonElement value) && value.ValueKind == JsonValueKind.False;

    private static bool AdmitsObject(JsonElement type) => type.ValueKind switch
    {
        JsonValueKind.String => type.ValueEquals("object"),
        JsonValueKind.Array => type.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.ValueEquals("object")),
        _ => true,
    };

    /// <summary>The subschema a local JSON pointer (<c>#/a/b</c>) names, or null for any other reference.</summary>
    internal static JsonElement? JsonPointer(JsonElement root, string pointer)
    {
        if (pointer == "#")
        {
            return root;
        }

        if (!pointer.StartsWith("#/", StringComparison.Ordinal))
        {
            return null;
        }

        JsonElement current = root;
        foreach (string raw in pointer[2..].Split('/'))
        {
            string token = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(token, out current))
            {
                return null;
            }
        }

        return current;
    }
}
