namespace SharedLog.Contracts.Registry;

/// <summary>Compatibility levels, named as Confluent names them on the wire (BACKWARD_TRANSITIVE, ...).</summary>
public enum CompatibilityLevel
{
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// <summary>
/// Registry modes: READONLY refuses registrations; IMPORT accepts registrations with given ids and versions;
/// READONLY_OVERRIDE is READONLY that, set registry-wide, holds for every subject whatever its own mode (Confluent's).
/// </summary>
public enum RegistryMode
{
    ReadWrite,
    ReadOnly,
    Import,
    ReadOnlyOverride,
}

/// <summary>Conversions between the enums and the upper-snake-case names of Confluent's API.</summary>
public static class RegistryNames
{
    public static string Name(CompatibilityLevel level) => level switch
    {
        CompatibilityLevel.None => "NONE",
        CompatibilityLevel.Backward => "BACKWARD",
        CompatibilityLevel.BackwardTransitive => "BACKWARD_TRANSITIVE",
        CompatibilityLevel.Forward => "FORWARD",
        CompatibilityLevel.ForwardTransitive => "FORWARD_TRANSITIVE",
        CompatibilityLevel.Full => "FULL",
        CompatibilityLevel.FullTransitive => "FULL_TRANSITIVE",
        _ => throw new ArgumentOutOfRangeException(nameof(level)),
    };

    public static bool TryParseLevel(string? text, out CompatibilityLevel level)
    {
        foreach (CompatibilityLevel candidate in Enum.GetValues<CompatibilityLevel>())
        {
            if (string.Equals(Name(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                level = candidate;
                return true;
            }
        }

        level = default;
        return false;
    }

    public static string Name(RegistryMode mode) => mode switch
    {
        RegistryMode.ReadWrite => "READWRITE",
        RegistryMode.ReadOnly => "READONLY",
        RegistryMode.Import => "IMPORT",
        RegistryMode.ReadOnlyOverride => "READONLY_OVERRIDE",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    public static bool TryParseMode(string? text, out RegistryMode mode)
    {
        foreach (RegistryMode candidate in Enum.GetValues<RegistryMode>())
        {
            if (string.Equals(Name(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                mode = candidate;
                return true;
            }
        }

        mode = default;
        return false;
    }

    public static string Name(SchemaType type) => type switch
    {
        SchemaType.Avro => "AVRO",
        SchemaType.Json => "JSON",
        SchemaType.Protobuf => "PROTOBUF",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Absent means AVRO, as in Confluent's API.</summary>
    public static bool TryParseType(string? text, out SchemaType type)
    {
        if (string.IsNullOrEmpty(text))
        {
            type = SchemaType.Avro;
            return true;
        }

        foreach (SchemaType candidate in Enum.GetValues<SchemaType>())
        {
            if (string.Equals(Name(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                type = candidate;
                return true;
            }
        }

        type = default;
        return false;
    }
}
