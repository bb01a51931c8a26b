using Microsoft.Data.Sqlite;

namespace SharedLog.Storage.Metadata;

public sealed partial class SqliteMetadataStore
{
    /// <summary>Leader of a partition no broker has claimed yet.</summary>
    public const int NoLeader = -1;

    private const string PartitionColumns = """
        SELECT p.topic_id, t.topic_name, p.partition_index, p.stream_id, p.leader_broker_id, p.leader_epoch, p.log_start_offset, p.committed_end_offset
        FROM partitions p JOIN topics t ON t.topic_id = p.topic_id
        """;

    public Task<TopicMetadata> CreateTopicAsync(string name, int partitionCount, IReadOnlyDictionary<string, string> configs, CancellationToken cancellationToken = default)
    {
        MetadataValidation.TopicName(name, nameof(name));
        MetadataValidation.PartitionCount(partitionCount, nameof(partitionCount));
        MetadataValidation.Configs(configs, nameof(configs));
        return WriteAsync(async (connection, ct) =>
        {
            if (await ScalarAsync(connection, "SELECT topic_id FROM topics WHERE topic_name = @name", ct, ("@name", name)).ConfigureAwait(false) is not null)
            {
                throw new TopicExistsException(name);
            }

            string topicId = Guid.NewGuid().ToString();
            await ExecuteAsync(connection, "INSERT INTO topics (topic_id, topic_name, created_at_ms) VALUES (@id, @name, @now)", ct,
                ("@id", topicId), ("@name", name), ("@now", NowMs())).ConfigureAwait(false);
            foreach ((string key, string value) in configs)
            {
                await ExecuteAsync(connection, "INSERT INTO topic_configs (topic_id, config_key, config_value) VALUES (@id, @key, @value)", ct,
                    ("@id", topicId), ("@key", key), ("@value", value)).ConfigureAwait(false);
            }

            await InsertPartitionsAsync(connection, topicId, 0, partitionCount, ct).ConfigureAwait(false);
            return await LoadTopicAsync(connection, "topic_id", topicId, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Topic '{name}' vanished inside its own transaction.");
        }, cancellationToken);
    }

    public Task<TopicMetadata?> GetTopicAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        return ReadAsync((connection, ct) => LoadTopicAsync(connection, "topic_name", name, ct), cancellationToken);
    }

    public Task<TopicMetadata?> GetTopicAsync(Guid topicId, CancellationToken cancellationToken = default) =>
        ReadAsync((connection, ct) => LoadTopicAsync(connection, "topic_id", topicId.ToString(), ct), cancellationToken);

    public Task<IReadOnlyList<TopicMetadata>> ListTopicsAsync(CancellationToken cancellationToken = default) =>
        ReadAsync<IReadOnlyList<TopicMetadata>>(async (connection, ct) =>
        {
            List<(string Id, string Name, long CreatedAtMs)> topics = await QueryAsync(connection,
                "SELECT topic_id, topic_name, created_at_ms FROM topics ORDER BY topic_name",
                r => (r.GetString(0), r.GetString(1), r.GetInt64(2)), ct).ConfigureAwait(false);
            List<PartitionMetadata> partitions = await QueryAsync(connection,
                PartitionColumns + " ORDER BY p.topic_id, p.partition_index", ReadPartition, ct).ConfigureAwait(false);
            List<(string TopicId, string Key, string Value)> configs = await QueryAsync(connection,
                "SELECT topic_id, config_key, config_value FROM topic_configs", r => (r.GetString(0), r.GetString(1), r.GetString(2)), ct).ConfigureAwait(false);

            ILookup<Guid, PartitionMetadata> partitionsByTopic = partitions.ToLookup(p => p.TopicId);
            ILookup<string, (string TopicId, string Key, string Value)> configsByTopic = configs.ToLookup(c => c.TopicId, StringComparer.Ordinal);
            var result = new List<TopicMetadata>(topics.Count);
            foreach ((string id, string name, long createdAtMs) in topics)
            {
                var topicId = Guid.Parse(id);
                result.Add(new TopicMetadata(
                    topicId,
                    name,
                    [.. partitionsByTopic[topicId]],
                    configsByTopic[id].ToDictionary(c => c.Key, c => c.Value, StringComparer.Ordinal),
                    DateTimeOffset.FromUnixTimeMilliseconds(createdAtMs)));
            }

            return result;
        }, cancellationToken);

    public Task<bool> DeleteTopicAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        return WriteAsync(async (connection, ct) =>
        {
            string? topicId = await ScalarStringAsync(connection, "SELECT topic_id FROM topics WHERE topic_name = @name", ct, ("@name", name)).ConfigureAwait(false);
            if (topicId is null)
            {
                return false;
            }

            // Objects holding only this topic's data go; objects shared with other topics stay for their
            // data and lose this topic's ranges (the compactor drops the dead bytes when it rewrites them).
            await ExecuteAsync(connection, """
                UPDATE objects SET object_state = @marked, marked_at_ms = @now
                WHERE object_state = @committed
                  AND EXISTS (SELECT 1 FROM object_ranges r JOIN partitions p ON p.stream_id = r.stream_id
                              WHERE r.object_id = objects.object_id AND p.topic_id = @topic)
                  AND NOT EXISTS (SELECT 1 FROM object_ranges r
                                  WHERE r.object_id = objects.object_id
                                    AND r.stream_id NOT IN (SELECT stream_id FROM partitions WHERE topic_id = @topic))
                """, ct, ("@marked", (int)ObjectState.MarkedForDeletion), ("@now", NowMs()), ("@committed", (int)ObjectState.Committed), ("@topic", topicId)).ConfigureAwait(false);
            await ExecuteAsync(connection, """
                DELETE FROM object_ranges
                WHERE stream_id IN (SELECT stream_id FROM partitions WHERE topic_id = @topic)
                  AND object_id IN (SELECT object_id FROM objects WHERE object_state <> @marked)
                """, ct, ("@topic", topicId), ("@marked", (int)ObjectState.MarkedForDeletion)).ConfigureAwait(false);
            // As Kafka does: a topic created later under the same name does not inherit consumer positions.
            await ExecuteAsync(connection, "DELETE FROM group_offsets WHERE topic_name = @name", ct, ("@name", name)).ConfigureAwait(false);
            await ExecuteAsync(connection, "DELETE FROM producer_snapshots WHERE stream_id IN (SELECT stream_id FROM partitions WHERE topic_id = @topic)", ct, ("@topic", topicId)).ConfigureAwait(false);
            await ExecuteAsync(connection, "DELETE FROM partitions WHERE topic_id = @topic", ct, ("@topic", topicId)).ConfigureAwait(false);
            await ExecuteAsync(connection, "DELETE FROM topic_configs WHERE topic_id = @topic", ct, ("@topic", topicId)).ConfigureAwait(false);
            await ExecuteAsync(connection, "DELETE FROM topics WHERE topic_id = @topic", ct, ("@topic", topicId)).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    public Task<TopicMetadata> AddPartitionsAsync(string name, int newPartitionCount, CancellationToken cancellationToken = default)
    {
        MetadataValidation.TopicName(name, nameof(name));
        MetadataValidation.PartitionCount(newPartitionCount, nameof(newPartitionCount));
        return WriteAsync(async (connection, ct) =>
        {
            string topicId = await ScalarStringAsync(connection, "SELECT topic_id FROM topics WHERE topic_name = @name", ct, ("@name", name)).ConfigureAwait(false)
                ?? throw new UnknownTopicException(name);
            int current = (int)(await ScalarInt64Async(connection, "SELECT COUNT(*) FROM partitions WHERE topic_id = @topic", ct, ("@topic", topicId)).ConfigureAwait(false) ?? 0);
            if (newPartitionCount < current)
            {
                throw new ArgumentOutOfRangeException(nameof(newPartitionCount), newPartitionCount,
                    $"Topic '{name}' has {current} partitions; partitions can be added, never removed.");
            }

            await InsertPartitionsAsync(connection, topicId, current, newPartitionCount, ct).ConfigureAwait(false);
            return await LoadTopicAsync(connection, "topic_id", topicId, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Topic '{name}' vanished inside its own transaction.");
        }, cancellationToken);
    }

    public Task<TopicMetadata> AlterTopicConfigsAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(changes);
        foreach (string key in changes.Keys)
        {
            MetadataValidation.ConfigKey(key, nameof(changes));
        }

        return WriteAsync(async (connection, ct) =>
        {
            string topicId = await ScalarStringAsync(connection, "SELECT topic_id FROM topics WHERE topic_name = @name", ct, ("@name", name)).ConfigureAwait(false)
                ?? throw new UnknownTopicException(name);
            foreach ((string key, string? value) in changes)
            {
                if (value is null)
                {
                    await ExecuteAsync(connection, "DELETE FROM topic_configs WHERE topic_id = @topic AND config_key = @key", ct,
                        ("@topic", topicId), ("@key", key)).ConfigureAwait(false);
                }
                else
                {
                    await ExecuteAsync(connection, """
                        INSERT INTO topic_configs (topic_id, config_key, config_value) VALUES (@topic, @key, @value)
                        ON CONFLICT (topic_id, config_key) DO UPDATE SET config_value = excluded.config_value
                        """, ct, ("@topic", topicId), ("@key", key), ("@value", value)).ConfigureAwait(false);
                }
            }

            return await LoadTopicAsync(connection, "topic_id", topicId, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Topic '{name}' vanished inside its own transaction.");
        }, cancellationToken);
    }

    public async Task<PartitionMetadata> ClaimLeadershipAsync(long streamId, int brokerId, CancellationToken cancellationToken = default) =>
        (await ClaimLeadershipAsync([streamId], brokerId, cancellationToken).ConfigureAwait(false))[0];

    public Task<IReadOnlyList<PartitionMetadata>> ClaimLeadershipAsync(IReadOnlyList<long> streamIds, int brokerId, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(brokerId);
        ArgumentNullException.ThrowIfNull(streamIds);
        return WriteAsync<IReadOnlyList<PartitionMetadata>>(async (connection, ct) =>
        {
            // One transaction for all: a topic of thousands of partitions is claimed with one commit (one fsync), not one each.
            await using SqliteCommand claim = CreateCommand(connection,
                "UPDATE partitions SET leader_broker_id = @broker, leader_epoch = leader_epoch + 1 WHERE stream_id = @stream",
                [("@broker", brokerId), ("@stream", 0L)]);
            await using SqliteCommand load = CreateCommand(connection, PartitionColumns + " WHERE p.stream_id = @stream", [("@stream", 0L)]);
            var claimed = new List<PartitionMetadata>(streamIds.Count);
            foreach (long streamId in streamIds)
            {
                // The epoch only grows: every write of the previous leader carries a smaller one and is refused.
                claim.Parameters["@stream"].Value = streamId;
                if (await claim.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0)
                {
                    throw new UnknownStreamException(streamId);
                }

                load.Parameters["@stream"].Value = streamId;
                await using SqliteDataReader reader = await load.ExecuteReaderAsync(ct).ConfigureAwait(false);
                claimed.Add(await reader.ReadAsync(ct).ConfigureAwait(false) ? ReadPartition(reader) : throw new UnknownStreamException(streamId));
            }

            return claimed;
        }, cancellationToken);
    }

    public Task<PartitionMetadata?> GetPartitionAsync(long streamId, CancellationToken cancellationToken = default) =>
        ReadAsync((connection, ct) => LoadPartitionAsync(connection, streamId, ct), cancellationToken);

    public Task SetLogStartOffsetAsync(long streamId, int leaderEpoch, long logStartOffset, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(logStartOffset);
        return WriteAsync(async (connection, ct) =>
        {
            List<(int Epoch, long LogStart)> rows = await QueryAsync(connection,
                "SELECT leader_epoch, log_start_offset FROM partitions WHERE stream_id = @stream",
                r => (r.GetInt32(0), r.GetInt64(1)), ct, ("@stream", streamId)).ConfigureAwait(false);
            if (rows.Count == 0)
            {
                throw new UnknownStreamException(streamId);
            }

            (int currentEpoch, long currentLogStart) = rows[0];
            if (leaderEpoch != currentEpoch)
            {
                throw new FencedException(streamId, leaderEpoch, currentEpoch);
            }

            // Never lowered: a late or repeated request is a no-op, not an error.
            if (logStartOffset > currentLogStart)
            {
                await ExecuteAsync(connection,
                    "UPDATE partitions SET log_start_offset = @offset WHERE stream_id = @stream AND leader_epoch = @epoch AND log_start_offset < @offset", ct,
                    ("@offset", logStartOffset), ("@stream", streamId), ("@epoch", leaderEpoch)).ConfigureAwait(false);
            }

            return 0;
        }, cancellationToken);
    }

    private static async Task InsertPartitionsAsync(SqliteConnection connection, string topicId, int fromIndex, int toIndex, CancellationToken cancellationToken)
    {
        if (toIndex <= fromIndex)
        {
            return;
        }

        long firstStreamId = await ReserveIdsAsync(connection, SqliteMetadataSchema.StreamIdSequence, toIndex - fromIndex, cancellationToken).ConfigureAwait(false);
        await using SqliteCommand insert = CreateCommand(connection, """
            INSERT INTO partitions (topic_id, partition_index, stream_id, leader_broker_id, leader_epoch, log_start_offset, committed_end_offset)
            VALUES (@topic, @index, @stream, @leader, 0, 0, 0)
            """, [("@topic", topicId), ("@index", 0), ("@stream", 0L), ("@leader", NoLeader)]);
        for (int index = fromIndex; index < toIndex; index++)
        {
            insert.Parameters["@index"].Value = index;
            insert.Parameters["@stream"].Value = firstStreamId + (index - fromIndex);
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Loads one topic by <paramref name="column"/> (a fixed column name, never input) equal to <paramref name="value"/>.</summary>
    private static async Task<TopicMetadata?> LoadTopicAsync(SqliteConnection connection, string column, string value, CancellationToken cancellationToken)
    {
        string where = column switch
        {
            "topic_id" => "topic_id = @value",
            "topic_name" => "topic_name = @value",
            _ => throw new ArgumentOutOfRangeException(nameof(column), column, "Topics are looked up by id or name."),
        };
        List<(string Id, string Name, long CreatedAtMs)> topics = await QueryAsync(connection,
            "SELECT topic_id, topic_name, created_at_ms FROM topics WHERE " + where,
            r => (r.GetString(0), r.GetString(1), r.GetInt64(2)), cancellationToken, ("@value", value)).ConfigureAwait(false);
        if (topics.Count == 0)
        {
            return null;
        }

        (string topicId, string name, long createdAtMs) = topics[0];
        List<PartitionMetadata> partitions = await QueryAsync(connection,
            PartitionColumns + " WHERE p.topic_id = @topic ORDER BY p.partition_index", ReadPartition, cancellationToken, ("@topic", topicId)).ConfigureAwait(false);
        List<(string Key, string Value)> configs = await QueryAsync(connection,
            "SELECT config_key, config_value FROM topic_configs WHERE topic_id = @topic",
            r => (r.GetString(0), r.GetString(1)), cancellationToken, ("@topic", topicId)).ConfigureAwait(false);
        return new TopicMetadata(
            Guid.Parse(topicId),
            name,
            partitions,
            configs.ToDictionary(c => c.Key, c => c.Value, StringComparer.Ordinal),
            DateTimeOffset.FromUnixTimeMilliseconds(createdAtMs));
    }

    private static async Task<PartitionMetadata?> LoadPartitionAsync(SqliteConnection connection, long streamId, CancellationToken cancellationToken)
    {
        List<PartitionMetadata> rows = await QueryAsync(connection, PartitionColumns + " WHERE p.stream_id = @stream", ReadPartition, cancellationToken,
            ("@stream", streamId)).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    private static PartitionMetadata ReadPartition(SqliteDataReader reader) => new(
        Guid.Parse(reader.GetString(0)),
        reader.GetString(1),
        reader.GetInt32(2),
        reader.GetInt64(3),
        reader.GetInt32(4),
        reader.GetInt32(5),
        reader.GetInt64(6),
        reader.GetInt64(7));
}
