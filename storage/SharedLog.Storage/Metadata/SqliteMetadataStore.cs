using System.Globalization;
using Microsoft.Data.Sqlite;

namespace SharedLog.Storage.Metadata;

public sealed class SqliteMetadataStoreOptions
{
    /// <summary>Path of the database file.</summary>
    public string DatabasePath { get; set; } = string.Empty;

    /// <summary>How long a writer waits for another writer's transaction.</summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw new ArgumentException("The SQLite metadata store needs a database path.");
        }

        if (BusyTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("The SQLite busy timeout must be positive.");
        }
    }
}

/// <summary>
/// <see cref="IMetadataStore"/> on SQLite, the embedded default. WAL journal, synchronous=FULL (a commit
/// is durable when it returns), one connection per operation from the driver's pool, and every change in
/// one BEGIN IMMEDIATE transaction so writers serialize. The SQL is plain; a PostgreSQL version differs
/// in the id sequences (SEQUENCE objects) and in locking partition rows with SELECT ... FOR UPDATE where
/// SQLite relies on its single writer.
/// </summary>
public sealed class SqliteMetadataStore : IMetadataStore
{
    private const int SchemaVersion = 1;
    private readonly string _connectionString;
    private readonly int _busyTimeoutMs;

    public SqliteMetadataStore(SqliteMetadataStoreOptions options)
    {
        options.Validate();
        string? directory = Path.GetDirectoryName(Path.GetFullPath(options.DatabasePath));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = options.DatabasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
        }.ToString();
        _busyTimeoutMs = (int)options.BusyTimeout.TotalMilliseconds;
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null, $"PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout={_busyTimeoutMs};", cancellationToken).ConfigureAwait(false);
        return connection;
    }

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        await using SqliteTransaction tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, tx, """
            CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS id_sequences (name TEXT PRIMARY KEY, next_value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS topics (topic_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS topic_configs (
                topic_id TEXT NOT NULL REFERENCES topics(topic_id) ON DELETE CASCADE,
                config_key TEXT NOT NULL, config_value TEXT NOT NULL, PRIMARY KEY (topic_id, config_key));
            CREATE TABLE IF NOT EXISTS partitions (
                stream_id INTEGER PRIMARY KEY,
                topic_id TEXT NOT NULL REFERENCES topics(topic_id) ON DELETE CASCADE,
                partition_index INTEGER NOT NULL,
                leader_broker_id INTEGER NOT NULL,
                leader_epoch INTEGER NOT NULL,
                log_start_offset INTEGER NOT NULL,
                committed_end_offset INTEGER NOT NULL,
                UNIQUE (topic_id, partition_index));
            CREATE TABLE IF NOT EXISTS objects (
                object_id INTEGER PRIMARY KEY, object_key TEXT NOT NULL UNIQUE, state INTEGER NOT NULL,
                size INTEGER NOT NULL, created_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS object_ranges (
                object_id INTEGER NOT NULL REFERENCES objects(object_id) ON DELETE CASCADE,
                stream_id INTEGER NOT NULL, leader_epoch INTEGER NOT NULL,
                start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
                position INTEGER NOT NULL, size INTEGER NOT NULL,
                first_timestamp INTEGER NOT NULL, max_timestamp INTEGER NOT NULL,
                PRIMARY KEY (object_id, stream_id));
            CREATE INDEX IF NOT EXISTS object_ranges_by_stream ON object_ranges (stream_id, end_offset);
            CREATE TABLE IF NOT EXISTS group_offsets (
                group_id TEXT NOT NULL, topic TEXT NOT NULL, partition_index INTEGER NOT NULL,
                committed_offset INTEGER NOT NULL, leader_epoch INTEGER NOT NULL, metadata TEXT,
                commit_time INTEGER NOT NULL, PRIMARY KEY (group_id, topic, partition_index));
            INSERT OR IGNORE INTO id_sequences (name, next_value) VALUES ('stream', 1), ('object', 1), ('producer_id', 0);
            """, cancellationToken).ConfigureAwait(false);
        long? version = (long?)await ScalarAsync(connection, tx, "SELECT MAX(version) FROM schema_version", cancellationToken).ConfigureAwait(false);
        if (version is null)
        {
            await ExecuteAsync(connection, tx, $"INSERT INTO schema_version (version) VALUES ({SchemaVersion})", cancellationToken).ConfigureAwait(false);
        }
        else if (version > SchemaVersion)
        {
            throw new InvalidOperationException($"Metadata schema version {version} is newer than this build ({SchemaVersion}).");
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    // ---- topics ----

    public async Task<TopicMetadata> CreateTopicAsync(string name, int partitionCount, IReadOnlyDictionary<string, string> configs, CancellationToken cancellationToken = default)
    {
        ValidateTopicName(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitionCount, 1);
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (await ScalarAsync(connection, tx, "SELECT 1 FROM topics WHERE name = $name", cancellationToken, ("$name", name)).ConfigureAwait(false) is not null)
        {
            throw new TopicExistsException(name);
        }

        var topicId = Guid.NewGuid();
        await ExecuteAsync(connection, tx, "INSERT INTO topics (topic_id, name, created_at) VALUES ($id, $name, $at)", cancellationToken,
            ("$id", topicId.ToString()), ("$name", name), ("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        foreach ((string key, string value) in configs)
        {
            await ExecuteAsync(connection, tx, "INSERT INTO topic_configs (topic_id, config_key, config_value) VALUES ($id, $k, $v)", cancellationToken,
                ("$id", topicId.ToString()), ("$k", key), ("$v", value)).ConfigureAwait(false);
        }

        await AddPartitionRowsAsync(connection, tx, topicId, 0, partitionCount, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (await GetTopicAsync(topicId, cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task AddPartitionRowsAsync(SqliteConnection connection, SqliteTransaction tx, Guid topicId, int from, int to, CancellationToken cancellationToken)
    {
        long firstStream = await NextIdsAsync(connection, tx, "stream", to - from, cancellationToken).ConfigureAwait(false);
        for (int p = from; p < to; p++)
        {
            await ExecuteAsync(connection, tx, """
                INSERT INTO partitions (stream_id, topic_id, partition_index, leader_broker_id, leader_epoch, log_start_offset, committed_end_offset)
                VALUES ($stream, $topic, $p, -1, 0, 0, 0)
                """, cancellationToken, ("$stream", firstStream + p - from), ("$topic", topicId.ToString()), ("$p", p)).ConfigureAwait(false);
        }
    }

    private static async Task<long> NextIdsAsync(SqliteConnection connection, SqliteTransaction tx, string sequence, long count, CancellationToken cancellationToken)
    {
        long first = (long)(await ScalarAsync(connection, tx, "SELECT next_value FROM id_sequences WHERE name = $n", cancellationToken, ("$n", sequence)).ConfigureAwait(false))!;
        await ExecuteAsync(connection, tx, "UPDATE id_sequences SET next_value = next_value + $c WHERE name = $n", cancellationToken, ("$c", count), ("$n", sequence)).ConfigureAwait(false);
        return first;
    }

    public Task<TopicMetadata?> GetTopicAsync(string name, CancellationToken cancellationToken = default) =>
        FindTopicAsync("name = $key", name, cancellationToken);

    public Task<TopicMetadata?> GetTopicAsync(Guid topicId, CancellationToken cancellationToken = default) =>
        FindTopicAsync("topic_id = $key", topicId.ToString(), cancellationToken);

    private async Task<TopicMetadata?> FindTopicAsync(string where, string key, CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        IReadOnlyList<TopicMetadata> topics = await ReadTopicsAsync(connection, where, key, cancellationToken).ConfigureAwait(false);
        return topics.Count == 0 ? null : topics[0];
    }

    public async Task<IReadOnlyList<TopicMetadata>> ListTopicsAsync(CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ReadTopicsAsync(connection, null, null, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<IReadOnlyList<TopicMetadata>> ReadTopicsAsync(SqliteConnection connection, string? where, string? key, CancellationToken cancellationToken)
    {
        var topics = new List<(Guid Id, string Name, DateTimeOffset Created)>();
        await using (SqliteCommand command = connection.CreateCommand())
        {
            command.CommandText = "SELECT topic_id, name, created_at FROM topics" + (where is null ? string.Empty : " WHERE " + where) + " ORDER BY name";
            if (key is not null)
            {
                command.Parameters.AddWithValue("$key", key);
            }

            await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                topics.Add((Guid.Parse(reader.GetString(0)), reader.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2))));
            }
        }

        var result = new List<TopicMetadata>(topics.Count);
        foreach ((Guid id, string name, DateTimeOffset created) in topics)
        {
            var configs = new Dictionary<string, string>(StringComparer.Ordinal);
            await using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "SELECT config_key, config_value FROM topic_configs WHERE topic_id = $id";
                command.Parameters.AddWithValue("$id", id.ToString());
                await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    configs[reader.GetString(0)] = reader.GetString(1);
                }
            }

            var partitions = new List<PartitionMetadata>();
            await using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = PartitionSelect + " WHERE p.topic_id = $id ORDER BY p.partition_index";
                command.Parameters.AddWithValue("$id", id.ToString());
                await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    partitions.Add(ReadPartition(reader));
                }
            }

            result.Add(new TopicMetadata(id, name, partitions, configs, created));
        }

        return result;
    }

    private const string PartitionSelect = """
        SELECT p.topic_id, t.name, p.partition_index, p.stream_id, p.leader_broker_id, p.leader_epoch, p.log_start_offset, p.committed_end_offset
        FROM partitions p JOIN topics t ON t.topic_id = p.topic_id
        """;

    private static PartitionMetadata ReadPartition(SqliteDataReader reader) => new(
        Guid.Parse(reader.GetString(0)), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3), reader.GetInt32(4), reader.GetInt32(5), reader.GetInt64(6), reader.GetInt64(7));

    public async Task<bool> DeleteTopicAsync(string name, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        object? id = await ScalarAsync(connection, tx, "SELECT topic_id FROM topics WHERE name = $name", cancellationToken, ("$name", name)).ConfigureAwait(false);
        if (id is null)
        {
            return false;
        }

        // Objects holding only this topic's data are marked for deletion; shared objects wait for compaction.
        await ExecuteAsync(connection, tx, $"""
            UPDATE objects SET state = {(int)ObjectState.MarkedForDeletion}
            WHERE state = {(int)ObjectState.Committed} AND object_id IN (SELECT object_id FROM object_ranges WHERE stream_id IN (SELECT stream_id FROM partitions WHERE topic_id = $id))
              AND NOT EXISTS (SELECT 1 FROM object_ranges r WHERE r.object_id = objects.object_id AND r.stream_id NOT IN (SELECT stream_id FROM partitions WHERE topic_id = $id))
            """, cancellationToken, ("$id", (string)id)).ConfigureAwait(false);
        await ExecuteAsync(connection, tx, "DELETE FROM object_ranges WHERE stream_id IN (SELECT stream_id FROM partitions WHERE topic_id = $id)", cancellationToken, ("$id", (string)id)).ConfigureAwait(false);
        await ExecuteAsync(connection, tx, "DELETE FROM topics WHERE topic_id = $id", cancellationToken, ("$id", (string)id)).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<TopicMetadata> AddPartitionsAsync(string name, int newPartitionCount, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string id = (string?)await ScalarAsync(connection, tx, "SELECT topic_id FROM topics WHERE name = $name", cancellationToken, ("$name", name)).ConfigureAwait(false)
            ?? throw new UnknownTopicException(name);
        int current = (int)(long)(await ScalarAsync(connection, tx, "SELECT COUNT(*) FROM partitions WHERE topic_id = $id", cancellationToken, ("$id", id)).ConfigureAwait(false))!;
        if (newPartitionCount <= current)
        {
            throw new ArgumentException($"Topic '{name}' has {current} partitions; the new count must be larger, not {newPartitionCount}.");
        }

        await AddPartitionRowsAsync(connection, tx, Guid.Parse(id), current, newPartitionCount, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (await GetTopicAsync(name, cancellationToken).ConfigureAwait(false))!;
    }

    public async Task<TopicMetadata> AlterTopicConfigsAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string id = (string?)await ScalarAsync(connection, tx, "SELECT topic_id FROM topics WHERE name = $name", cancellationToken, ("$name", name)).ConfigureAwait(false)
            ?? throw new UnknownTopicException(name);
        foreach ((string key, string? value) in changes)
        {
            await ExecuteAsync(connection, tx, "DELETE FROM topic_configs WHERE topic_id = $id AND config_key = $k", cancellationToken, ("$id", id), ("$k", key)).ConfigureAwait(false);
            if (value is not null)
            {
                await ExecuteAsync(connection, tx, "INSERT INTO topic_configs (topic_id, config_key, config_value) VALUES ($id, $k, $v)", cancellationToken, ("$id", id), ("$k", key), ("$v", value)).ConfigureAwait(false);
            }
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (await GetTopicAsync(name, cancellationToken).ConfigureAwait(false))!;
    }

    public async Task<PartitionMetadata> ClaimLeadershipAsync(long streamId, int brokerId, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        int updated = await ExecuteAsync(connection, tx, "UPDATE partitions SET leader_broker_id = $b, leader_epoch = leader_epoch + 1 WHERE stream_id = $s", cancellationToken, ("$b", brokerId), ("$s", streamId)).ConfigureAwait(false);
        if (updated == 0)
        {
            throw new ArgumentException($"Stream {streamId} does not exist.");
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (await GetPartitionAsync(streamId, cancellationToken).ConfigureAwait(false))!;
    }

    public async Task<PartitionMetadata?> GetPartitionAsync(long streamId, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = PartitionSelect + " WHERE p.stream_id = $s";
        command.Parameters.AddWithValue("$s", streamId);
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadPartition(reader) : null;
    }

    public async Task SetLogStartOffsetAsync(long streamId, int leaderEpoch, long logStartOffset, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await CheckEpochAsync(connection, tx, streamId, leaderEpoch, cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, tx, "UPDATE partitions SET log_start_offset = MAX(log_start_offset, $o) WHERE stream_id = $s", cancellationToken, ("$o", logStartOffset), ("$s", streamId)).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<long> CheckEpochAsync(SqliteConnection connection, SqliteTransaction tx, long streamId, int leaderEpoch, CancellationToken cancellationToken)
    {
        await using SqliteCommand command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT leader_epoch, committed_end_offset FROM partitions WHERE stream_id = $s";
        command.Parameters.AddWithValue("$s", streamId);
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            throw new FencedException(streamId, leaderEpoch, int.MaxValue);
        }

        int current = reader.GetInt32(0);
        if (current != leaderEpoch)
        {
            throw new FencedException(streamId, leaderEpoch, current);
        }

        return reader.GetInt64(1);
    }

    // ---- objects ----

    public async Task<PreparedObject> PrepareObjectAsync(string keyPrefix, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long id = await NextIdsAsync(connection, tx, "object", 1, cancellationToken).ConfigureAwait(false);

        // Hash first, so consecutive objects land on different S3 key partitions.
        uint hash = (uint)(id * 2654435761L);
        string key = $"{hash % 65536:x4}/{keyPrefix}{id.ToString("D20", CultureInfo.InvariantCulture)}";
        await ExecuteAsync(connection, tx, "INSERT INTO objects (object_id, object_key, state, size, created_at) VALUES ($id, $key, $state, 0, $at)", cancellationToken,
            ("$id", id), ("$key", key), ("$state", (int)ObjectState.Prepared), ("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new PreparedObject(id, key);
    }

    public async Task CommitObjectAsync(ObjectCommit commit, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long? state = (long?)await ScalarAsync(connection, tx, "SELECT state FROM objects WHERE object_id = $id", cancellationToken, ("$id", commit.ObjectId)).ConfigureAwait(false);
        if (state != (int)ObjectState.Prepared)
        {
            throw new InvalidOperationException($"Object {commit.ObjectId} is not prepared (state {state?.ToString(CultureInfo.InvariantCulture) ?? "missing"}).");
        }

        bool compaction = commit.Replaces.Count > 0;
        foreach (ObjectRange range in commit.Ranges)
        {
            if (range.EndOffset <= range.StartOffset)
            {
                throw new ArgumentException($"Stream {range.StreamId}: empty range [{range.StartOffset}, {range.EndOffset}).");
            }

            long committedEnd = await CheckEpochAsync(connection, tx, range.StreamId, range.LeaderEpoch, cancellationToken).ConfigureAwait(false);
            if (!compaction && range.StartOffset != committedEnd)
            {
                throw new OffsetConflictException(range.StreamId, committedEnd, range.StartOffset);
            }

            if (compaction && range.EndOffset > committedEnd)
            {
                throw new OffsetConflictException(range.StreamId, committedEnd, range.EndOffset);
            }

            await ExecuteAsync(connection, tx, """
                INSERT INTO object_ranges (object_id, stream_id, leader_epoch, start_offset, end_offset, position, size, first_timestamp, max_timestamp)
                VALUES ($o, $s, $e, $start, $end, $pos, $size, $first, $max)
                """, cancellationToken, ("$o", commit.ObjectId), ("$s", range.StreamId), ("$e", range.LeaderEpoch), ("$start", range.StartOffset), ("$end", range.EndOffset),
                ("$pos", range.Position), ("$size", range.Size), ("$first", range.FirstTimestamp), ("$max", range.MaxTimestamp)).ConfigureAwait(false);
            if (!compaction)
            {
                await ExecuteAsync(connection, tx, "UPDATE partitions SET committed_end_offset = $end WHERE stream_id = $s", cancellationToken, ("$end", range.EndOffset), ("$s", range.StreamId)).ConfigureAwait(false);
            }
        }

        foreach (long replaced in commit.Replaces)
        {
            await ExecuteAsync(connection, tx, $"UPDATE objects SET state = {(int)ObjectState.MarkedForDeletion} WHERE object_id = $id AND state = {(int)ObjectState.Committed}", cancellationToken, ("$id", replaced)).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, "DELETE FROM object_ranges WHERE object_id = $id", cancellationToken, ("$id", replaced)).ConfigureAwait(false);
        }

        await ExecuteAsync(connection, tx, $"UPDATE objects SET state = {(int)ObjectState.Committed}, size = $size WHERE object_id = $id", cancellationToken, ("$size", commit.ObjectSize), ("$id", commit.ObjectId)).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<StreamObjectRange>> GetObjectRangesAsync(long streamId, long fromOffset, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT o.object_id, o.object_key, o.size, r.stream_id, r.leader_epoch, r.start_offset, r.end_offset, r.position, r.size, r.first_timestamp, r.max_timestamp
            FROM object_ranges r JOIN objects o ON o.object_id = r.object_id
            WHERE r.stream_id = $s AND r.end_offset > $from AND o.state = {(int)ObjectState.Committed}
            ORDER BY r.start_offset
            """;
        command.Parameters.AddWithValue("$s", streamId);
        command.Parameters.AddWithValue("$from", fromOffset);
        var ranges = new List<StreamObjectRange>();
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ranges.Add(new StreamObjectRange(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), new ObjectRange(
                reader.GetInt64(3), reader.GetInt32(4), reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7), reader.GetInt64(8), reader.GetInt64(9), reader.GetInt64(10))));
        }

        return ranges;
    }

    public async Task<long> GetCommittedEndOffsetAsync(long streamId, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return (long?)await ScalarAsync(connection, null, "SELECT committed_end_offset FROM partitions WHERE stream_id = $s", cancellationToken, ("$s", streamId)).ConfigureAwait(false) ?? 0;
    }

    public async Task<IReadOnlyList<ObjectMetadata>> ListObjectsAsync(CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "SELECT object_id, object_key, state, size, created_at FROM objects ORDER BY object_id";
        var objects = new List<ObjectMetadata>();
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            objects.Add(new ObjectMetadata(reader.GetInt64(0), reader.GetString(1), (ObjectState)reader.GetInt32(2), reader.GetInt64(3), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4))));
        }

        return objects;
    }

    public async Task MarkObjectsDeletedAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (long id in objectIds)
        {
            await ExecuteAsync(connection, tx, $"UPDATE objects SET state = {(int)ObjectState.MarkedForDeletion} WHERE object_id = $id", cancellationToken, ("$id", id)).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, "DELETE FROM object_ranges WHERE object_id = $id", cancellationToken, ("$id", id)).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task ForgetObjectsAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (long id in objectIds)
        {
            await ExecuteAsync(connection, tx, "DELETE FROM objects WHERE object_id = $id", cancellationToken, ("$id", id)).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    // ---- consumer groups ----

    public async Task CommitGroupOffsetsAsync(string groupId, IReadOnlyList<GroupOffset> offsets, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (GroupOffset offset in offsets)
        {
            await ExecuteAsync(connection, tx, """
                INSERT INTO group_offsets (group_id, topic, partition_index, committed_offset, leader_epoch, metadata, commit_time)
                VALUES ($g, $t, $p, $o, $e, $m, $at)
                ON CONFLICT (group_id, topic, partition_index) DO UPDATE SET committed_offset = $o, leader_epoch = $e, metadata = $m, commit_time = $at
                """, cancellationToken, ("$g", groupId), ("$t", offset.Topic), ("$p", offset.Partition), ("$o", offset.Offset), ("$e", offset.LeaderEpoch),
                ("$m", (object?)offset.Metadata ?? DBNull.Value), ("$at", offset.CommitTime.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<GroupOffset>> FetchGroupOffsetsAsync(string groupId, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "SELECT topic, partition_index, committed_offset, leader_epoch, metadata, commit_time FROM group_offsets WHERE group_id = $g ORDER BY topic, partition_index";
        command.Parameters.AddWithValue("$g", groupId);
        var offsets = new List<GroupOffset>();
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            offsets.Add(new GroupOffset(reader.GetString(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt32(3), reader.IsDBNull(4) ? null : reader.GetString(4), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5))));
        }

        return offsets;
    }

    public async Task DeleteGroupOffsetsAsync(string groupId, IReadOnlyList<(string Topic, int Partition)>? partitions, CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (partitions is null)
        {
            await ExecuteAsync(connection, tx, "DELETE FROM group_offsets WHERE group_id = $g", cancellationToken, ("$g", groupId)).ConfigureAwait(false);
        }
        else
        {
            foreach ((string topic, int partition) in partitions)
            {
                await ExecuteAsync(connection, tx, "DELETE FROM group_offsets WHERE group_id = $g AND topic = $t AND partition_index = $p", cancellationToken, ("$g", groupId), ("$t", topic), ("$p", partition)).ConfigureAwait(false);
            }
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> ListGroupsAsync(CancellationToken cancellationToken = default)
    {
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id";
        var groups = new List<string>();
        await using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            groups.Add(reader.GetString(0));
        }

        return groups;
    }

    // ---- producer ids ----

    public async Task<ProducerIdBlock> AllocateProducerIdsAsync(int blockSize, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        await using SqliteConnection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long first = await NextIdsAsync(connection, tx, "producer_id", blockSize, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new ProducerIdBlock(first, blockSize);
    }

    public ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        return ValueTask.CompletedTask;
    }

    // ---- helpers ----

    private static void ValidateTopicName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 249 || name is "." or ".." || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            throw new ArgumentException($"'{name}' is not a valid topic name (1-249 of [a-zA-Z0-9._-]).", nameof(name));
        }
    }

    private static async Task<int> ExecuteAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using SqliteCommand command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        foreach ((string name, object value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using SqliteCommand command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        foreach ((string name, object value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        object? result = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return result is DBNull ? null : result;
    }
}
