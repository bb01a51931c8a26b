namespace SharedLog.Storage.Metadata;

public sealed partial class SqliteMetadataStore
{
    public Task CommitGroupOffsetsAsync(string groupId, IReadOnlyList<GroupOffset> offsets, CancellationToken cancellationToken = default)
    {
        MetadataValidation.GroupId(groupId, nameof(groupId));
        ArgumentNullException.ThrowIfNull(offsets);
        foreach (GroupOffset offset in offsets)
        {
            MetadataValidation.GroupOffset(offset, nameof(offsets));
        }

        return WriteAsync(async (connection, ct) =>
        {
            foreach (GroupOffset offset in offsets)
            {
                // In the same write as the offsets, so a delete of the topic cannot come between the check and the commit.
                if (offset.TopicId is { } topicId
                    && await ScalarStringAsync(connection, "SELECT topic_id FROM topics WHERE topic_name = @name", ct, ("@name", offset.Topic)).ConfigureAwait(false) != topicId.ToString())
                {
                    throw new UnknownTopicException(offset.Topic);
                }

                await ExecuteAsync(connection, """
                    INSERT INTO group_offsets (group_id, topic_name, partition_index, committed_offset, leader_epoch, offset_metadata, commit_time_ms, expire_time_ms)
                    VALUES (@group, @topic, @partition, @offset, @epoch, @metadata, @time, @expire)
                    ON CONFLICT (group_id, topic_name, partition_index) DO UPDATE SET
                        committed_offset = excluded.committed_offset,
                        leader_epoch = excluded.leader_epoch,
                        offset_metadata = excluded.offset_metadata,
                        commit_time_ms = excluded.commit_time_ms,
                        expire_time_ms = excluded.expire_time_ms
                    """, ct, ("@group", groupId), ("@topic", offset.Topic), ("@partition", offset.Partition), ("@offset", offset.Offset),
                    ("@epoch", offset.LeaderEpoch), ("@metadata", offset.Metadata), ("@time", offset.CommitTime.ToUnixTimeMilliseconds()),
                    ("@expire", offset.ExpireTime?.ToUnixTimeMilliseconds())).ConfigureAwait(false);
            }

            return 0;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<GroupOffset>> FetchGroupOffsetsAsync(string groupId, CancellationToken cancellationToken = default)
    {
        MetadataValidation.GroupId(groupId, nameof(groupId));
        return ReadAsync<IReadOnlyList<GroupOffset>>(async (connection, ct) => await QueryAsync(connection, """
            SELECT topic_name, partition_index, committed_offset, leader_epoch, offset_metadata, commit_time_ms, expire_time_ms
            FROM group_offsets WHERE group_id = @group ORDER BY topic_name, partition_index
            """,
            r => new GroupOffset(r.GetString(0), r.GetInt32(1), r.GetInt64(2), r.GetInt32(3), r.IsDBNull(4) ? null : r.GetString(4),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)), r.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6))),
            ct, ("@group", groupId)).ConfigureAwait(false), cancellationToken);
    }

    /// <summary>Deletes the listed partitions' offsets, or all the group's offsets when <paramref name="partitions"/> is null.</summary>
    public Task DeleteGroupOffsetsAsync(string groupId, IReadOnlyList<(string Topic, int Partition)>? partitions, CancellationToken cancellationToken = default)
    {
        MetadataValidation.GroupId(groupId, nameof(groupId));
        return WriteAsync(async (connection, ct) =>
        {
            if (partitions is null)
            {
                await ExecuteAsync(connection, "DELETE FROM group_offsets WHERE group_id = @group", ct, ("@group", groupId)).ConfigureAwait(false);
                await ExecuteAsync(connection, "DELETE FROM group_states WHERE group_id = @group", ct, ("@group", groupId)).ConfigureAwait(false);
                return 0;
            }

            foreach ((string topic, int partition) in partitions)
            {
                await ExecuteAsync(connection, "DELETE FROM group_offsets WHERE group_id = @group AND topic_name = @topic AND partition_index = @partition", ct,
                    ("@group", groupId), ("@topic", topic), ("@partition", partition)).ConfigureAwait(false);
            }

            return 0;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<string>> ListGroupsAsync(CancellationToken cancellationToken = default) =>
        ReadAsync<IReadOnlyList<string>>(async (connection, ct) => await QueryAsync(connection,
            "SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id", r => r.GetString(0), ct).ConfigureAwait(false), cancellationToken);

    public Task<IReadOnlyList<(string Topic, int Partition)>> DeleteExpiredGroupOffsetsAsync(string groupId, DateTimeOffset now, DateTimeOffset cutoff, DateTimeOffset? emptySince, IReadOnlySet<string>? keepTopics, CancellationToken cancellationToken = default)
    {
        MetadataValidation.GroupId(groupId, nameof(groupId));
        long nowMs = now.ToUnixTimeMilliseconds();
        long cutoffMs = cutoff.ToUnixTimeMilliseconds();
        long? emptySinceMs = emptySince?.ToUnixTimeMilliseconds();
        return WriteAsync<IReadOnlyList<(string Topic, int Partition)>>(async (connection, ct) =>
        {
            List<(string Topic, int Partition, long CommitMs, long? ExpireMs)> offsets = await QueryAsync(connection,
                "SELECT topic_name, partition_index, commit_time_ms, expire_time_ms FROM group_offsets WHERE group_id = @group",
                r => (r.GetString(0), r.GetInt32(1), r.GetInt64(2), r.IsDBNull(3) ? (long?)null : r.GetInt64(3)), ct, ("@group", groupId)).ConfigureAwait(false);
            var expired = new List<(string Topic, int Partition)>();
            foreach ((string topic, int partition, long commitMs, long? expireMs) in offsets)
            {
                // An offset committed at or after the round's time came after the caller looked at the group (a member may
                // have joined since), so it waits for the next round.
                bool due = commitMs < nowMs && (expireMs is { } at ? nowMs >= at : (emptySinceMs ?? commitMs) <= cutoffMs);
                if (due && keepTopics?.Contains(topic) != true)
                {
                    await ExecuteAsync(connection, "DELETE FROM group_offsets WHERE group_id = @group AND topic_name = @topic AND partition_index = @partition", ct,
                        ("@group", groupId), ("@topic", topic), ("@partition", partition)).ConfigureAwait(false);
                    expired.Add((topic, partition));
                }
            }

            if (expired.Count == offsets.Count && expired.Count > 0)
            {
                await ExecuteAsync(connection, "DELETE FROM group_states WHERE group_id = @group", ct, ("@group", groupId)).ConfigureAwait(false);
            }

            return expired;
        }, cancellationToken);
    }

    public Task SaveGroupStateAsync(SavedGroupState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        MetadataValidation.GroupId(state.GroupId, nameof(state));
        ArgumentNullException.ThrowIfNull(state.ProtocolType, nameof(state));
        return WriteAsync(async (connection, ct) =>
        {
            await ExecuteAsync(connection, """
                INSERT INTO group_states (group_id, protocol_type, empty_since_ms) VALUES (@group, @type, @empty)
                ON CONFLICT (group_id) DO UPDATE SET protocol_type = excluded.protocol_type, empty_since_ms = excluded.empty_since_ms
                """, ct, ("@group", state.GroupId), ("@type", state.ProtocolType), ("@empty", state.EmptySince?.ToUnixTimeMilliseconds())).ConfigureAwait(false);
            return 0;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<SavedGroupState>> ListGroupStatesAsync(CancellationToken cancellationToken = default) =>
        ReadAsync<IReadOnlyList<SavedGroupState>>(async (connection, ct) => await QueryAsync(connection,
            "SELECT group_id, protocol_type, empty_since_ms FROM group_states ORDER BY group_id",
            r => new SavedGroupState(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2))), ct).ConfigureAwait(false), cancellationToken);

    public Task<int> DeleteGroupStatesWithoutOffsetsAsync(IReadOnlySet<string> keep, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keep);
        return WriteAsync(async (connection, ct) =>
        {
            List<string> orphans = await QueryAsync(connection,
                "SELECT group_id FROM group_states s WHERE NOT EXISTS (SELECT 1 FROM group_offsets o WHERE o.group_id = s.group_id)",
                r => r.GetString(0), ct).ConfigureAwait(false);
            int deleted = 0;
            foreach (string groupId in orphans)
            {
                if (!keep.Contains(groupId))
                {
                    await ExecuteAsync(connection, "DELETE FROM group_states WHERE group_id = @group", ct, ("@group", groupId)).ConfigureAwait(false);
                    deleted++;
                }
            }

            return deleted;
        }, cancellationToken);
    }

    public Task<ProducerIdBlock> AllocateProducerIdsAsync(int blockSize, CancellationToken cancellationToken = default)
    {
        if (blockSize is < 1 or > MetadataValidation.MaxProducerIdBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"A producer id block has 1 to {MetadataValidation.MaxProducerIdBlockSize} ids.");
        }

        return WriteAsync(async (connection, ct) =>
        {
            long first = await ReserveIdsAsync(connection, SqliteMetadataSchema.ProducerIdSequence, blockSize, ct).ConfigureAwait(false);
            return new ProducerIdBlock(first, blockSize);
        }, cancellationToken);
    }

    public Task SaveProducerSnapshotsAsync(IReadOnlyList<ProducerSnapshot> snapshots, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        foreach (ProducerSnapshot snapshot in snapshots)
        {
            ArgumentNullException.ThrowIfNull(snapshot.State, nameof(snapshots));
            ArgumentOutOfRangeException.ThrowIfNegative(snapshot.Offset, nameof(snapshots));
        }

        return WriteAsync(async (connection, ct) =>
        {
            long now = NowMs();
            foreach (ProducerSnapshot snapshot in snapshots)
            {
                await ExecuteAsync(connection, """
                    INSERT INTO producer_snapshots (stream_id, snapshot_offset, producer_state, taken_at_ms)
                    VALUES (@stream, @offset, @state, @now)
                    ON CONFLICT (stream_id) DO UPDATE SET
                        snapshot_offset = excluded.snapshot_offset,
                        producer_state = excluded.producer_state,
                        taken_at_ms = excluded.taken_at_ms
                    """, ct, ("@stream", snapshot.StreamId), ("@offset", snapshot.Offset), ("@state", snapshot.State), ("@now", now)).ConfigureAwait(false);
            }

            return 0;
        }, cancellationToken);
    }

    public Task<ProducerSnapshot?> GetProducerSnapshotAsync(long streamId, CancellationToken cancellationToken = default) =>
        ReadAsync(async (connection, ct) => (await QueryAsync(connection,
            "SELECT snapshot_offset, producer_state FROM producer_snapshots WHERE stream_id = @stream",
            r => new ProducerSnapshot(streamId, r.GetInt64(0), r.GetString(1)),
            ct, ("@stream", streamId)).ConfigureAwait(false)).SingleOrDefault(), cancellationToken);
}
