namespace SharedLog.Storage.Metadata;

/// <summary>Settings of the embedded SQLite metadata store (docs/configuration.md); validated at start.</summary>
public sealed class SqliteMetadataStoreOptions
{
    /// <summary>Path of the database file; its directory is created if missing.</summary>
    public string DatabasePath { get; set; } = string.Empty;

    /// <summary>
    /// How long an operation waits for another process's write transaction on the same file before it
    /// fails. Writers of one store instance queue in memory and do not spend this.
    /// </summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw new ArgumentException("The SQLite metadata store needs a database path.");
        }

        // Every pooled connection to ":memory:" would see its own empty database.
        if (DatabasePath.Trim() == ":memory:" || DatabasePath.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{DatabasePath}' is not a database file path.");
        }

        if (BusyTimeout < TimeSpan.FromMilliseconds(1) || BusyTimeout > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException($"The SQLite busy timeout {BusyTimeout} must be between 1 ms and 10 minutes.");
        }
    }
}
