namespace SharedLog.Protocol;

/// <summary>Hand-written half of the generated API table: the header-version rules.</summary>
public static partial class ApiMessages
{
    /// <summary>
    /// Request header v2 for flexible request versions (KIP-482), v1 otherwise; ControlledShutdown v0
    /// is the one request that still uses header v0 (no client id).
    /// </summary>
    public static short RequestHeaderVersion(ApiKey apiKey, short version) =>
        version >= FirstFlexibleRequestVersion(apiKey) ? (short)2
        : apiKey == ApiKey.ControlledShutdown && version == 0 ? (short)0
        : (short)1;

    /// <summary>
    /// Response header v1 for flexible response versions, v0 otherwise. ApiVersions responses always
    /// use v0 so that a client can parse the answer whatever version it asked for.
    /// </summary>
    public static short ResponseHeaderVersion(ApiKey apiKey, short version) =>
        apiKey != ApiKey.ApiVersions && version >= FirstFlexibleResponseVersion(apiKey) ? (short)1 : (short)0;

    public static bool IsSupported(ApiKey apiKey, short version) =>
        IsDefined((short)apiKey) && version >= LowestVersion(apiKey) && version <= HighestVersion(apiKey);

    private static KafkaProtocolException Unknown(ApiKey apiKey) =>
        new($"Unknown API key {(short)apiKey}.", ErrorCode.UnsupportedVersion);
}
