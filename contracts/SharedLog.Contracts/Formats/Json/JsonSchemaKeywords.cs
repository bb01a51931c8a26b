using System.Text.Json;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// Checks that keyword values have the JSON types the specification gives them (drafts 4 to 2020-12),
/// and collects the <c>$ref</c>s and anchors of a document. Unknown keywords are annotations and pass.
/// </summary>
internal static class JsonSchemaKeywords
{
    public static readonly IReadOnlySet<string> TypeNames = new HashSet<string>(StringComparer.Ordinal)
    {
        "null", "boolean", "object", "array", "number", "integer", "string",
    };

    /// <summary>Keywords that restrict the accepted values; everything else only annotates.</summary>
    private static readonly HashSet<string> Constraints = new(StringComparer.Ordinal)
    {
        "$ref", "$dynamicRef", "$recursiveRef", "type", "enum", "const",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern", "format",
        "items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains", "unevaluatedItems",
        "properties", "patternProperties", "additionalProperties", "required", "minProperties", "maxProperties", "propertyNames",
        "dependencies", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    };

    private static readonly string[] SingleSchemaKeywords =
    [
        "additionalProperties", "additionalItems", "contains", "propertyNames", "not", "if", "then", "else",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    ];

    private static readonly string[] SchemaMapKeywords = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"];

    private static readonly string[] SchemaArrayKeywords = ["allOf", "anyOf", "oneOf", "prefixItems"];

    private static readonly string[] NumberKeywords = ["minimum", "maximum", "multipleOf"];

    private static readonly string[] CountKeywords =
    [
        "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains",
    ];

    private static readonly string[] StringKeywords = ["$ref", "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "title", "description", "format", "pattern"];

    public static bool IsConstraint(string keyword) => Constraints.Contains(keyword);

    /// <summary>Validates every schema of <paramref name="document"/>, filling its refs and anchors.</summary>
    public static void Validate(JsonSchemaDocument document) => ValidateSchema(document, document.Root, string.Empty, 0, document.RetrievalUri);

    private static void ValidateSchema(JsonSchemaDocument document, JsonElement schema, string pointer, int depth, Uri baseUri)
    {
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(document, pointer, $"a schema must be a JSON object or a boolean, found {Describe(schema.ValueKind)}");
        }

        if (depth > SchemaLimits.MaxDepth)
        {
            throw Invalid(document, pointer, $"schema nesting is deeper than {SchemaLimits.MaxDepth}");
        }

        foreach (var keyword in StringKeywords)
        {
            if (schema.TryGetProperty(keyword, out var value) && value.ValueKind != JsonValueKind.String)
            {
                throw Invalid(document, pointer + "/" + JsonPointer.Escape(keyword), $"'{keyword}' must be a string, found {Describe(value.ValueKind)}");
            }
        }

        CheckType(document, schema, pointer);
        CheckNumbers(document, schema, pointer);
        CheckRequired(document, schema, pointer);
        CheckPatterns(document, schema, pointer);
        CheckMisc(document, schema, pointer);
        baseUri = CollectRefAndAnchors(document, schema, pointer, baseUri);

        foreach (var keyword in SingleSchemaKeywords)
        {
            if (schema.TryGetProperty(keyword, out var value))
            {
                ValidateSchema(document, value, pointer + "/" + keyword, depth + 1, baseUri);
            }
        }

        foreach (var keyword in SchemaMapKeywords)
        {
            if (!schema.TryGetProperty(keyword, out var value))
            {
                continue;
            }

            if (value.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(document, pointer + "/" + JsonPointer.Escape(keyword), $"'{keyword}' must be an object of schemas, found {Describe(value.ValueKind)}");
            }

            foreach (var entry in value.EnumerateObject())
            {
                ValidateSchema(document, entry.Value, pointer + "/" + JsonPointer.Escape(keyword) + "/" + JsonPointer.Escape(entry.Name), depth + 1, baseUri);
            }
        }

        foreach (var keyword in SchemaArrayKeywords)
        {
            if (!schema.TryGetProperty(keyword, out var value))
            {
                continue;
            }

            if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            {
                throw Invalid(document, pointer + "/" + keyword, $"'{keyword}' must be a non-empty array of schemas, found {Describe(value)}");
            }

            ValidateSchemaArray(document, value, pointer + "/" + keyword, depth, baseUri);
        }

        if (schema.TryGetProperty("items", out var items))
        {
            if (items.ValueKind == JsonValueKind.Array)
            {
                ValidateSchemaArray(document, items, pointer + "/items", depth, baseUri);
            }
            else
            {
                ValidateSchema(document, items, pointer + "/items", depth + 1, baseUri);
            }
        }

        if (schema.TryGetProperty("dependencies", out var dependencies))
        {
            if (dependencies.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(document, pointer + "/dependencies", $"'dependencies' must be an object, found {Describe(dependencies.ValueKind)}");
            }

            foreach (var entry in dependencies.EnumerateObject())
            {
                var entryPointer = pointer + "/dependencies/" + JsonPointer.Escape(entry.Name);
                if (entry.Value.ValueKind == JsonValueKind.Array)
                {
                    CheckStringArray(document, entry.Value, entryPointer, "dependencies");
                }
                else
                {
                    ValidateSchema(document, entry.Value, entryPointer, depth + 1, baseUri);
                }
            }
        }
    }

    private static void ValidateSchemaArray(JsonSchemaDocument document, JsonElement array, string pointer, int depth, Uri baseUri)
    {
        var index = 0;
        foreach (var item in array.EnumerateArray())
        {
            ValidateSchema(document, item, pointer + "/" + index.ToString(System.Globalization.CultureInfo.InvariantCulture), depth + 1, baseUri);
            index++;
        }
    }

    private static void CheckType(JsonSchemaDocument document, JsonElement schema, string pointer)
    {
        if (!schema.TryGetProperty("type", out var type))
        {
            return;
        }

        if (type.ValueKind == JsonValueKind.String)
        {
            CheckTypeName(document, type, pointer);
            return;
        }

        if (type.ValueKind != JsonValueKind.Array || type.GetArrayLength() == 0)
        {
            throw Invalid(document, pointer + "/type", $"'type' must be a type name or a non-empty array of type names, found {Describe(type)}");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in type.EnumerateArray())
        {
            CheckTypeName(document, item, pointer);
            if (!seen.Add(item.GetString()!))
            {
                throw Invalid(document, pointer + "/type", $"'type' lists '{item.GetString()}' twice");
            }
        }
    }

    private static void CheckTypeName(JsonSchemaDocument document, JsonElement name, string pointer)
    {
        if (name.ValueKind != JsonValueKind.String)
        {
            throw Invalid(document, pointer + "/type", $"'type' entries must be strings, found {Describe(name.ValueKind)}");
        }

        if (!TypeNames.Contains(name.GetString()!))
        {
            throw Invalid(document, pointer + "/type", $"unknown type '{name.GetString()}' (expected one of {string.Join(", ", TypeNames)})");
        }
    }

    private static void CheckNumbers(JsonSchemaDocument document, JsonElement schema, string pointer)
    {
        foreach (var keyword in NumberKeywords)
        {
            if (schema.TryGetProperty(keyword, out var value) && value.ValueKind != JsonValueKind.Number)
            {
                throw Invalid(document, pointer + "/" + keyword, $"'{keyword}' must be a number, found {Describe(value.ValueKind)}");
            }
        }

        if (schema.TryGetProperty("multipleOf", out var multipleOf) && !(JsonNumbers.Read(multipleOf) > 0))
        {
            // Numbers are checked as decimals, whose smallest step is 1e-28: a smaller positive divisor reads as 0 there.
            throw Invalid(document, pointer + "/multipleOf", multipleOf.GetDouble() > 0
                ? "'multipleOf' below 1e-28 is not supported (numbers are checked as decimals, which cannot hold it)"
                : "'multipleOf' must be greater than 0");
        }

        // Draft 4 writes exclusive bounds as booleans beside minimum/maximum; later drafts as numbers.
        foreach (var keyword in new[] { "exclusiveMinimum", "exclusiveMaximum" })
        {
            if (schema.TryGetProperty(keyword, out var value) && value.ValueKind is not (JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False))
            {
                throw Invalid(document, pointer + "/" + keyword, $"'{keyword}' must be a number (or a boolean in draft 4), found {Describe(value.ValueKind)}");
            }
        }

        foreach (var keyword in CountKeywords)
        {
            if (!schema.TryGetProperty(keyword, out var value))
            {
                continue;
            }

            if (value.ValueKind != JsonValueKind.Number || JsonNumbers.Read(value) is not { } count || count < 0 || count != decimal.Truncate(count))
            {
                throw Invalid(document, pointer + "/" + keyword, $"'{keyword}' must be a non-negative integer, found {value.GetRawText()}");
            }
        }
    }

    private static void CheckRequired(JsonSchemaDocument document, JsonElement schema, string pointer)
    {
        if (schema.TryGetProperty("required", out var required))
        {
            CheckStringArray(document, required, pointer + "/required", "required");
        }

        if (schema.TryGetProperty("dependentRequired", out var dependentRequired))
        {
            if (dependentRequired.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(document, pointer + "/dependentRequired", $"'dependentRequired' must be an object, found {Describe(dependentRequired.ValueKind)}");
            }

            foreach (var entry in dependentRequired.EnumerateObject())
            {
                CheckStringArray(document, entry.Value, pointer + "/dependentRequired/" + JsonPointer.Escape(entry.Name), "dependentRequired");
            }
        }
    }

    private static void CheckStringArray(JsonSchemaDocument document, JsonElement value, string pointer, string keyword)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(document, pointer, $"'{keyword}' must be an array of strings, found {Describe(value.ValueKind)}");
        }

        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw Invalid(document, pointer, $"'{keyword}' must contain only strings, found {Describe(item.ValueKind)}");
            }
        }
    }

    private static void CheckPatterns(JsonSchemaDocument document, JsonElement schema, string pointer)
    {
        if (schema.TryGetProperty("pattern", out var pattern))
        {
            CheckRegex(document, pattern.GetString()!, pointer + "/pattern");
        }

        if (schema.TryGetProperty("patternProperties", out var patternProperties) && patternProperties.ValueKind == JsonValueKind.Object)
        {
            foreach (var entry in patternProperties.EnumerateObject())
            {
                CheckRegex(document, entry.Name, pointer + "/patternProperties/" + JsonPointer.Escape(entry.Name));
            }
        }
    }

    private static void CheckRegex(JsonSchemaDocument document, string pattern, string pointer)
    {
        if (!document.Set.Patterns.Add(pattern))
        {
            return;
        }

        try
        {
            _ = new Regex(pattern, RegexOptions.None, JsonNumbers.RegexTimeout);
        }
        catch (ArgumentException ex) when (!pattern.Contains("\\p{", StringComparison.Ordinal) && !pattern.Contains("\\P{", StringComparison.Ordinal))
        {
            // ECMA-262 Unicode property names (\p{Letter}) are unknown to .NET; those patterns are let through.
            throw Invalid(document, pointer, $"invalid regular expression '{pattern}': {ex.Message}");
        }
        catch (ArgumentException)
        {
        }
    }

    private static void CheckMisc(JsonSchemaDocument document, JsonElement schema, string pointer)
    {
        if (schema.TryGetProperty("uniqueItems", out var unique) && unique.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            throw Invalid(document, pointer + "/uniqueItems", $"'uniqueItems' must be a boolean, found {Describe(unique.ValueKind)}");
        }

        if (schema.TryGetProperty("enum", out var values) && values.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(document, pointer + "/enum", $"'enum' must be an array, found {Describe(values.ValueKind)}");
        }
    }

    /// <summary>Registers embedded resources and anchors, records the $ref with its base URI, and returns the base URI for subschemas.</summary>
    private static Uri CollectRefAndAnchors(JsonSchemaDocument document, JsonElement schema, string pointer, Uri baseUri)
    {
        if (JsonSchemaSet.IdOf(document, schema) is { } id)
        {
            if (!Uri.TryCreate(baseUri, id, out var resolved))
            {
                throw Invalid(document, pointer, $"'$id' value '{id}' is not a valid URI reference");
            }

            var (_, fragment) = JsonSchemaSet.Split(resolved);
            if (!id.StartsWith('#'))
            {
                baseUri = resolved;
                document.Set.RegisterResource(baseUri, document, pointer);
            }

            if (fragment.Length > 0)
            {
                // Draft 6/7 plain-name fragments ("$id": "#foo") are anchors.
                document.Set.RegisterAnchor(baseUri, Uri.UnescapeDataString(fragment), document, pointer);
            }
        }

        foreach (var keyword in new[] { "$anchor", "$dynamicAnchor" })
        {
            if (schema.TryGetProperty(keyword, out var anchor))
            {
                document.Set.RegisterAnchor(baseUri, anchor.GetString()!, document, pointer);
            }
        }

        if (schema.TryGetProperty("$ref", out var reference))
        {
            document.Refs.Add((pointer, reference.GetString()!));
            document.RefBases[pointer] = baseUri;
        }

        return baseUri;
    }

    private static InvalidSchemaException Invalid(JsonSchemaDocument document, string pointer, string message) =>
        new($"Invalid JSON schema{(document.IsRoot ? string.Empty : $" (reference '{document.Key}')")} at #{pointer}: {message}");

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static string Describe(JsonElement value) =>
        value.ValueKind == JsonValueKind.Array ? (value.GetArrayLength() == 0 ? "an empty array" : "an array") : Describe(value.ValueKind);
}

internal static class JsonNumbers
{
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(200);

    /// <summary>A JSON number as a decimal, clamped to decimal's range when it is larger.</summary>
    public static decimal? Read(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Number)
        {
            return null;
        }

        if (value.TryGetDecimal(out var result))
        {
            return result;
        }

        var approximate = value.GetDouble();
        return approximate >= (double)decimal.MaxValue ? decimal.MaxValue
            : approximate <= (double)decimal.MinValue ? decimal.MinValue
            : 0m; // a tiny magnitude that underflows decimal
    }

    public static string Format(decimal value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
