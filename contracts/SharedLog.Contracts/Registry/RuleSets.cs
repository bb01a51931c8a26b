using System.Text.Json;
using System.Text.Json.Nodes;
using SharedLog.Contracts.Formats.Json;

namespace SharedLog.Contracts.Registry;

/// <summary>
/// Confluent's data contract rules on a schema version (<c>ruleSet</c>: <c>domainRules</c> and <c>migrationRules</c>),
/// which serializers with rule executors (CEL conditions, field encryption) read from the registry. The registry keeps
/// them with the version, counts them in its identity (new rules make a new version) and carries them over to a
/// version registered without any, as Confluent does; it does not run them (the broker's contracts do that).
/// </summary>
public static class RuleSets
{
    private static readonly string[] Kinds = ["TRANSFORM", "CONDITION"];
    private static readonly string[] Modes = ["UPGRADE", "DOWNGRADE", "UPDOWN", "READ", "WRITE", "WRITEREAD"];

    /// <summary>Order-independent JSON text of a rule set (what identity compares); null for none.</summary>
    public static string? Canonical(JsonObject? ruleSet) =>
        ruleSet is null ? null : JsonCanonical.Write(JsonSerializer.SerializeToElement(ruleSet));

    /// <summary>What Confluent would refuse in a rule set (a rule without a name, a name twice, an unknown kind or mode); null when none.</summary>
    public static string? Problem(JsonObject ruleSet)
    {
        foreach ((string list, JsonNode? rules) in ruleSet)
        {
            if (list is not ("domainRules" or "migrationRules" or "encodingRules"))
            {
                continue;
            }

            if (rules is not JsonArray array)
            {
                return rules is null ? null : $"ruleSet.{list} must be an array";
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonNode? rule in array)
            {
                if (rule is not JsonObject fields || fields["name"] is not JsonValue nameValue || !nameValue.TryGetValue(out string? name) || string.IsNullOrEmpty(name))
                {
                    return $"Every rule of ruleSet.{list} needs a name";
                }

                if (!names.Add(name))
                {
                    return $"Found duplicate rule name {name} in ruleSet.{list}";
                }

                if (Word(fields, "kind") is { } kind && !Kinds.Contains(kind))
                {
                    return $"Rule {name} has kind {kind}; it must be one of {string.Join(", ", Kinds)}";
                }

                if (Word(fields, "mode") is { } mode && !Modes.Contains(mode))
                {
                    return $"Rule {name} has mode {mode}; it must be one of {string.Join(", ", Modes)}";
                }

                if (fields["type"] is not JsonValue typeValue || !typeValue.TryGetValue(out string? type) || string.IsNullOrEmpty(type))
                {
                    return $"Rule {name} needs a type (CEL, CEL_FIELD, ENCRYPT, ...)";
                }
            }
        }

        return null;
    }

    private static string? Word(JsonObject fields, string name) =>
        fields[name] is JsonValue value && value.TryGetValue(out string? text) ? text : fields[name]?.ToJsonString();
}
