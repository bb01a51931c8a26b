namespace SharedLog.Storage.Metadata;

/// <summary>
/// The metadata schema as ordered migrations. Migration N takes the schema from version N-1 to N; the
/// versions applied are rows of <c>schema_version</c>. Append only: a released migration is never edited.
/// Types are the portable subset (BIGINT, INTEGER, TEXT); names avoid SQL keywords (offset, partition, key)
/// so the same statements run on PostgreSQL.
/// </summary>
internal static class SqliteMetadataSchema
{
    public const string VersionTable = """
        CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at_ms BIGINT NOT NULL)
        """;

    public const string StreamIdSequence = "stream_id";
    public const string ObjectIdSequence = "object_id";
    public const string ProducerIdSequence = "producer_id";

    public static IReadOnlyList<IReadOnlyList<string>> Migrations { get; } =
    [
        // Version 1.
        [
            // Ids are handed out from here and never reused, even after the rows that used them are gone.
            """
            CREATE TABLE id_sequences (
                sequence_name TEXT NOT NULL PRIMARY KEY,
                next_value BIGINT NOT NULL)
            """,
            $"INSERT INTO id_sequences (sequence_name, next_value) VALUES ('{StreamIdSequence}', 1), ('{ObjectIdSequence}', 1), ('{ProducerIdSequence}', 0)",
            """
            CREATE TABLE topics (
                topic_id TEXT NOT NULL PRIMARY KEY,
                topic_name TEXT NOT NULL UNIQUE,
                created_at_ms BIGINT NOT NULL)
            """,
            """
            CREATE TABLE topic_configs (
                topic_id TEXT NOT NULL REFERENCES topics (topic_id),
                config_key TEXT NOT NULL,
                config_value TEXT NOT NULL,
                PRIMARY KEY (topic_id, config_key))
            """,
            """
            CREATE TABLE partitions (
                topic_id TEXT NOT NULL REFERENCES topics (topic_id),
                partition_index INTEGER NOT NULL,
                stream_id BIGINT NOT NULL UNIQUE,
                leader_broker_id INTEGER NOT NULL,
                leader_epoch INTEGER NOT NULL,
                log_start_offset BIGINT NOT NULL,
                committed_end_offset BIGINT NOT NULL,
                PRIMARY KEY (topic_id, partition_index))
            """,
            """
            CREATE TABLE objects (
                object_id BIGINT NOT NULL PRIMARY KEY,
                object_key TEXT NOT NULL UNIQUE,
                object_state INTEGER NOT NULL,
                object_size BIGINT NOT NULL,
                created_at_ms BIGINT NOT NULL)
            """,
            "CREATE INDEX objects_by_state ON objects (object_state)",
            // No foreign key to partitions: the ranges of a deleted topic's objects outlive its partition rows
            // until the objects are forgotten.
            """
            CREATE TABLE object_ranges (
                object_id BIGINT NOT NULL REFERENCES objects (object_id),
                stream_id BIGINT NOT NULL,
                leader_epoch INTEGER NOT NULL,
                start_offset BIGINT NOT NULL,
                end_offset BIGINT NOT NULL,
                byte_position BIGINT NOT NULL,
                byte_size BIGINT NOT NULL,
                first_timestamp BIGINT NOT NULL,
                max_timestamp BIGINT NOT NULL,
                PRIMARY KEY (object_id, stream_id, start_offset))
            """,
            "CREATE INDEX object_ranges_by_stream ON object_ranges (stream_id, end_offset)",
            """
            CREATE TABLE group_offsets (
                group_id TEXT NOT NULL,
                topic_name TEXT NOT NULL,
                partition_index INTEGER NOT NULL,
                committed_offset BIGINT NOT NULL,
                leader_epoch INTEGER NOT NULL,
                offset_metadata TEXT NULL,
                commit_time_ms BIGINT NOT NULL,
                PRIMARY KEY (group_id, topic_name, partition_index))
            """,
        ],

        // Version 2: compaction.
        [
            // When an object was marked for deletion: its bytes stay for a grace period, for readers that
            // looked it up just before. Rows marked under version 1 keep NULL, read as "marked long ago".
            "ALTER TABLE objects ADD COLUMN marked_at_ms BIGINT NULL",
            // ObjectKind (1 = stream-set, 2 = stream), so the compactor finds its inputs without reading
            // objects. Version 1 only ever committed stream-set objects, hence the default.
            "ALTER TABLE objects ADD COLUMN object_kind INTEGER NOT NULL DEFAULT 1",
        ],

        // Version 3: idempotent producer state.
        [
            // Per partition: its producers' state as of snapshot_offset (every idempotent batch below it is
            // reflected), so a new leader replays only the log from there. producer_state is the broker's
            // encoding; the store does not read it.
            """
            CREATE TABLE producer_snapshots (
                stream_id BIGINT NOT NULL PRIMARY KEY,
                snapshot_offset BIGINT NOT NULL,
                producer_state TEXT NOT NULL,
                taken_at_ms BIGINT NOT NULL)
            """,
        ],

        // Version 4: offset expiry as Kafka's (an offset's own retention; a group's protocol type and empty time).
        [
            "ALTER TABLE group_offsets ADD COLUMN expire_time_ms BIGINT NULL",
            """
            CREATE TABLE group_states (
                group_id TEXT NOT NULL PRIMARY KEY,
                protocol_type TEXT NOT NULL,
                empty_since_ms BIGINT NULL)
            """,
            // Groups from before this version: whether they had members is unknown, so they keep their offsets until the
            // retention after the broker's start, as before (an empty protocol type here means exactly that).
            "INSERT INTO group_states (group_id, protocol_type, empty_since_ms) SELECT DISTINCT group_id, '', NULL FROM group_offsets",
        ],
    ];

    public static int CurrentVersion => Migrations.Count;
}
