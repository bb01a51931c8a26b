namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// System.Text.Json accepts an escaped unpaired surrogate ("\ud800") as valid JSON and throws
/// <see cref="InvalidOperationException"/> only when the string or property name is taken: such an exception is bad
/// input to answer as such, not a fault of the server.
/// </summary>
public static class InvalidJsonText
{
    public static bool Is(Exception exception) =>
        exception is InvalidOperationException && exception.TargetSite?.DeclaringType?.Namespace?.StartsWith("System.Text.Json", StringComparison.Ordinal) == true;
}
