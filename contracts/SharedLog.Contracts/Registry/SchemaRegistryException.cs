namespace SharedLog.Contracts.Registry;

/// <summary>
/// A registry operation refused with one of Confluent's error codes; the HTTP layer turns it into
/// <c>{"error_code": ErrorCode, "message": Message}</c> with <see cref="HttpStatus"/>.
/// </summary>
public sealed class SchemaRegistryException(int errorCode, string message) : Exception(message)
{
    public int ErrorCode { get; } = errorCode;

    /// <summary>Confluent's codes carry the HTTP status in their first three digits (40401 → 404).</summary>
    public int HttpStatus => ErrorCode >= 10_000 ? ErrorCode / 100 : ErrorCode;

    public static SchemaRegistryException SubjectNotFound(string subject) => new(RegistryErrorCodes.SubjectNotFound, $"Subject '{subject}' not found.");

    public static SchemaRegistryException VersionNotFound(string subject, int version) => new(RegistryErrorCodes.VersionNotFound, $"Version {version} not found for subject '{subject}'.");

    public static SchemaRegistryException SchemaNotFound(string what) => new(RegistryErrorCodes.SchemaNotFound, $"Schema {what} not found.");

    public static SchemaRegistryException ReadOnly(string subject) => new(RegistryErrorCodes.OperationNotPermitted, $"Subject '{subject}' is in read-only mode.");
}

/// <summary>The error codes of Confluent's Schema Registry REST API.</summary>
public static class RegistryErrorCodes
{
    public const int SubjectNotFound = 40401;
    public const int VersionNotFound = 40402;
    public const int SchemaNotFound = 40403;
    public const int SubjectSoftDeleted = 40404;
    public const int SubjectNotSoftDeleted = 40405;
    public const int VersionSoftDeleted = 40406;
    public const int VersionNotSoftDeleted = 40407;
    public const int SubjectCompatibilityNotConfigured = 40408;
    public const int SubjectModeNotConfigured = 40409;
    public const int IncompatibleSchema = 409;
    public const int InvalidSchema = 42201;
    public const int InvalidVersion = 42202;
    public const int InvalidCompatibilityLevel = 42203;
    public const int InvalidMode = 42204;
    public const int OperationNotPermitted = 42205;
    public const int ReferenceExists = 42206;
    public const int InvalidSubject = 42208;
    public const int StoreError = 50001;
}
