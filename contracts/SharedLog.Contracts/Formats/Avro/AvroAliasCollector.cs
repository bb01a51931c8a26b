using System.Text.Json;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Reads the aliases of every named type straight from the schema JSON, because Apache.Avro does
/// not expose them. Depth is already bounded by the caller's JSON depth check.
/// </summary>
internal static class AvroAliasCollector
{
    public static void Collect(JsonElement element, string? enclosingNamespace, Dictionary<string, IReadOnlyList<string>> aliasesByFullName)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Array:
                foreach (var branch in element.EnumerateArray())
                {
                    Collect(branch, enclosingNamespace, aliasesByFullName);
                }

                break;
            case JsonValueKind.Object:
                CollectFromObject(element, enclosingNamespace, aliasesByFullName);
                break;
            default:
                break;
        }
    }

    private static void CollectFromObject(JsonElement element, string? enclosingNamespace, Dictionary<string, IReadOnlyList<string>> aliasesByFullName)
    {
        if (!element.TryGetProperty("type", out var type))
        {
            return;
        }

        if (type.ValueKind != JsonValueKind.String)
        {
            Collect(type, enclosingNamespace, aliasesByFullName);
            return;
        }

        switch (type.GetString())
        {
            case "record" or "error" or "enum" or "fixed":
                CollectNamedType(element, enclosingNamespace, aliasesByFullName);
                break;
            case "array" when element.TryGetProperty("items", out var items):
                Collect(items, enclosingNamespace, aliasesByFullName);
                break;
            case "map" when element.TryGetProperty("values", out var values):
                Collect(values, enclosingNamespace, aliasesByFullName);
                break;
            default:
                break;
        }
    }

    private static void CollectNamedType(JsonElement element, string? enclosingNamespace, Dictionary<string, IReadOnlyList<string>> aliasesByFullName)
    {
        if (!element.TryGetProperty("name", out var nameElement) || nameElement.ValueKind != JsonValueKind.String)
        {
            return;
        }

        var name = nameElement.GetString()!;
        string? space;
        var lastDot = name.LastIndexOf('.');
        if (lastDot >= 0)
        {
            space = name[..lastDot];
        }
        else if (element.TryGetProperty("namespace", out var namespaceElement) && namespaceElement.ValueKind == JsonValueKind.String)
        {
            space = namespaceElement.GetString();
        }
        else
        {
            space = enclosingNamespace;
        }

        var fullName = Qualify(name, space);
        if (element.TryGetProperty("aliases", out var aliasesElement) && aliasesElement.ValueKind == JsonValueKind.Array)
        {
            aliasesByFullName[fullName] = aliasesElement.EnumerateArray()
                .Where(alias => alias.ValueKind == JsonValueKind.String)
                .Select(alias => Qualify(alias.GetString()!, space))
                .ToList();
        }

        if (element.TryGetProperty("fields", out var fields) && fields.ValueKind == JsonValueKind.Array)
        {
            foreach (var field in fields.EnumerateArray())
            {
                if (field.ValueKind == JsonValueKind.Object && field.TryGetProperty("type", out var fieldType))
                {
                    Collect(fieldType, space, aliasesByFullName);
                }
            }
        }
    }

    private static string Qualify(string name, string? space) =>
        name.Contains('.', StringComparison.Ordinal) || string.IsNullOrEmpty(space) ? name : space + "." + name;
}
