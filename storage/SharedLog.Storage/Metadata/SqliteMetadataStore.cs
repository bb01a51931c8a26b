using System.Globalization;
using Microsoft.Data.Sqlite;

namespace SharedLog.Storage.Metadata;

/// <summary>
/// <see cref="IMetadataStore"/> on SQLite, the embedded default. WAL journal and synchronous=FULL, so a
/// change is on disk when its call returns; foreign keys on. Each operation takes a connection from the
/// driver's pool. Every change runs in one BEGIN IMMEDIATE transaction: SQLite then has exactly one writer,
/// which is what makes the read-check-write of a commit (epoch, committed end offset) atomic. Writers of
/// this instance also queue on an async gate, so they wait in memory instead of in SQLite's busy handler;
/// other processes on the same file are held off by the busy timeout. Reads run in a deferred transaction
/// (one consistent snapshot) and never wait for writers.
/// <para>
/// For PostgreSQL the statements stay as they are (parameters, ON CONFLICT upserts and the tables are
/// shared); what differs: (1) BEGIN IMMEDIATE locks the whole database, PostgreSQL instead needs
/// SELECT ... FOR UPDATE on the partitions rows and objects rows a commit reads (topic rows for
/// topic changes); the committed_end_offset UPDATE already carries the expected value and epoch in its
/// WHERE, so a lost race shows as zero rows there too. (2) The id_sequences table becomes SEQUENCE objects
/// (nextval; a producer id block via a sequence with the block size as INCREMENT, or the table row locked
/// FOR UPDATE). (3) The PRAGMAs become server settings (synchronous_commit=on is the default); topic ids
/// can be uuid and times timestamptz.
/// </para>
/// </summary>
public sealed partial class SqliteMetadataStore : IMetadataStore
{
    private readonly string _connectionString;
    private readonly string _connectionPragmas;
    private readonly TimeProvider _timeProvider;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<SQLitePCL.sqlite3, object> _configuredHandles = [];
    private volatile bool _initialized;
    private int _disposed;

    public SqliteMetadataStore(SqliteMetadataStoreOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string fullPath = Path.GetFullPath(options.DatabasePath);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            // The driver's own retry on SQLITE_BUSY, in whole seconds, after SQLite's busy handler gave up.
            DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
        }.ToString();

        // PRAGMA values cannot be parameters; this one is an integer from validated options.
        _connectionPragmas = string.Create(
            CultureInfo.InvariantCulture,
            $"PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = {(long)options.BusyTimeout.TotalMilliseconds};");
        _timeProvider = timeProvider ?? TimeProvider.System;
        DatabasePath = fullPath;
    }

    /// <summary>Full path of the database file.</summary>
    public string DatabasePath { get; }

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        string? directory = Path.GetDirectoryName(DatabasePath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using (SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false))
            {
                // Persistent in the file; must run outside a transaction.
                string? mode = await ScalarStringAsync(connection, "PRAGMA journal_mode = WAL", cancellationToken).ConfigureAwait(false);
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InvalidOperationException($"SQLite refused WAL journal mode for '{DatabasePath}' (mode is '{mode}').");
                }
            }

            await RunInTransactionAsync("BEGIN IMMEDIATE", MigrateAsync, cancellationToken).ConfigureAwait(false);
            _initialized = true;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task<int> MigrateAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, SqliteMetadataSchema.VersionTable, cancellationToken).ConfigureAwait(false);
        long current = await ScalarInt64Async(connection, "SELECT MAX(version) FROM schema_version", cancellationToken).ConfigureAwait(false) ?? 0;
        if (current > SqliteMetadataSchema.CurrentVersion)
        {
            throw new InvalidOperationException(
                $"Metadata database '{DatabasePath}' has schema version {current}, newer than this build's {SqliteMetadataSchema.CurrentVersion}.");
        }

        for (long version = current + 1; version <= SqliteMetadataSchema.CurrentVersion; version++)
        {
            foreach (string statement in SqliteMetadataSchema.Migrations[(int)version - 1])
            {
                await ExecuteAsync(connection, statement, cancellationToken).ConfigureAwait(false);
            }

            await ExecuteAsync(connection, "INSERT INTO schema_version (version, applied_at_ms) VALUES (@version, @now)", cancellationToken,
                ("@version", version), ("@now", NowMs())).ConfigureAwait(false);
        }

        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Let a write in flight finish (later ones see the flag), then drop the pooled connections so the
        // file is closed and its WAL checkpointed. The gate is left undisposed: a caller still queued on it
        // must wake up, see the flag and fail instead of hanging.
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            SqliteConnection.ClearPool(connection);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>The settings an operation's connection runs with (journal mode, synchronous level, foreign keys); for tests.</summary>
    internal async Task<(string JournalMode, long Synchronous, long ForeignKeys)> ReadConnectionSettingsAsync(CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        string mode = await ScalarStringAsync(connection, "PRAGMA journal_mode", cancellationToken).ConfigureAwait(false) ?? string.Empty;
        long synchronous = await ScalarInt64Async(connection, "PRAGMA synchronous", cancellationToken).ConfigureAwait(false) ?? -1;
        long foreignKeys = await ScalarInt64Async(connection, "PRAGMA foreign_keys", cancellationToken).ConfigureAwait(false) ?? -1;
        return (mode, synchronous, foreignKeys);
    }

    /// <summary>SQLite's plan for <paramref name="sql"/>, one line per step (EXPLAIN QUERY PLAN's detail column); for tests.</summary>
    internal Task<IReadOnlyList<string>> ExplainQueryPlanAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        ReadStatementAsync<IReadOnlyList<string>>(async (connection, ct) => await QueryAsync(connection, "EXPLAIN QUERY PLAN " + sql, r => r.GetString(3), ct, parameters).ConfigureAwait(false), cancellationToken);

    // ---- transactions ----

    /// <summary>Runs <paramref name="work"/> as one write transaction; writers of this instance queue on the gate.</summary>
    private async Task<T> WriteAsync<T>(Func<SqliteConnection, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        ThrowIfNotReady();
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfNotReady();
            return await RunInTransactionAsync("BEGIN IMMEDIATE", work, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Runs <paramref name="work"/> on one snapshot; WAL mode lets it proceed while a writer commits.</summary>
    private Task<T> ReadAsync<T>(Func<SqliteConnection, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        ThrowIfNotReady();
        return RunInTransactionAsync("BEGIN", work, cancellationToken);
    }

    /// <summary>
    /// Runs a read that is a single statement: one statement already reads one snapshot, so it goes without the
    /// BEGIN and COMMIT round trips of <see cref="ReadAsync{T}"/> (the object lookup of every read from objects).
    /// </summary>
    private async Task<T> ReadStatementAsync<T>(Func<SqliteConnection, CancellationToken, Task<T>> statement, CancellationToken cancellationToken)
    {
        ThrowIfNotReady();
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await statement(connection, cancellationToken).ConfigureAwait(false);
    }

    private async Task<T> RunInTransactionAsync<T>(string begin, Func<SqliteConnection, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, begin, cancellationToken).ConfigureAwait(false);
        bool committed = false;
        try
        {
            T result = await work(connection, cancellationToken).ConfigureAwait(false);
            // Not cancellable: once the work is done the change either commits or fails, it is not abandoned.
            await ExecuteAsync(connection, "COMMIT", CancellationToken.None).ConfigureAwait(false);
            committed = true;
            return result;
        }
        finally
        {
            if (!committed)
            {
                await RollbackAsync(connection).ConfigureAwait(false);
            }
        }
    }

    private static async Task RollbackAsync(SqliteConnection connection)
    {
        try
        {
            await ExecuteAsync(connection, "ROLLBACK", CancellationToken.None).ConfigureAwait(false);
        }
        catch (SqliteException)
        {
            // SQLite may have rolled back on its own (I/O error, disk full). Whatever the state, this
            // connection must not go back to the pool inside a transaction.
            SqliteConnection.ClearPool(connection);
        }
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            // Pragmas hold for the database handle's life, and the pool hands the same handle out again: set them
            // once per handle, not once per operation (three statements parsed and run before every read).
            SQLitePCL.sqlite3 handle = connection.Handle!;
            if (!_configuredHandles.TryGetValue(handle, out _))
            {
                await ExecuteAsync(connection, _connectionPragmas, cancellationToken).ConfigureAwait(false);
                _configuredHandles.AddOrUpdate(handle, handle);
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void ThrowIfNotReady()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!_initialized)
        {
            throw new InvalidOperationException("Call InitializeAsync before using the metadata store.");
        }
    }

    private long NowMs() => _timeProvider.GetUtcNow().ToUnixTimeMilliseconds();

    // ---- SQL helpers: every value goes in as a parameter ----

    private static SqliteCommand CreateCommand(SqliteConnection connection, string sql, (string Name, object? Value)[] parameters)
    {
        SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        foreach ((string name, object? value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    private static async Task<int> ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using SqliteCommand command = CreateCommand(connection, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using SqliteCommand command = CreateCommand(connection, sql, parameters);
        object? value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is DBNull ? null : value;
    }

    private static async Task<long?> ScalarInt64Async(SqliteConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        await ScalarAsync(connection, sql, cancellationToken, parameters).ConfigureAwait(false) is { } value
            ? Convert.ToInt64(value, CultureInfo.InvariantCulture)
            : null;

    private static async Task<string?> ScalarStringAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        (string?)await ScalarAsync(connection, sql, cancellationToken, parameters).ConfigureAwait(false);

    private static async Task<List<T>> QueryAsync<T>(
        SqliteConnection connection, string sql, Func<SqliteDataReader, T> map, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using SqliteCommand command = CreateCommand(connection, sql, parameters);
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    /// <summary>Reserves <paramref name="count"/> consecutive ids; inside a write transaction, so no two callers get the same.</summary>
    private static async Task<long> ReserveIdsAsync(SqliteConnection connection, string sequence, long count, CancellationToken cancellationToken)
    {
        long first = await ScalarInt64Async(connection, "SELECT next_value FROM id_sequences WHERE sequence_name = @name", cancellationToken, ("@name", sequence)).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Id sequence '{sequence}' is missing from the metadata database.");
        long next = checked(first + count);
        await ExecuteAsync(connection, "UPDATE id_sequences SET next_value = @next WHERE sequence_name = @name", cancellationToken,
            ("@next", next), ("@name", sequence)).ConfigureAwait(false);
        return first;
    }
}
