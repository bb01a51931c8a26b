using Microsoft.Extensions.Logging;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;

namespace SharedLog.Broker.Coordinators;

/// <summary>
/// Expires committed offsets as Kafka's <c>offsets.retention.minutes</c> does since KIP-211:
/// <list type="bullet">
/// <item>a group with a protocol type (a consumer group, Kafka Connect) and no members loses all its offsets once it
/// has been empty for the retention;</item>
/// <item>a group that only commits offsets (no protocol type) loses each offset the retention after its own commit;</item>
/// <item>a Stable consumer group loses the offsets of topics no member subscribes to, each after the retention from its
/// commit; other groups with members lose nothing;</item>
/// <item>an offset committed with its own retention (OffsetCommit v2-4 <c>retention_time_ms</c>) expires at its expire
/// time whenever the rules above let its group lose offsets at all.</item>
/// </list>
/// A group left without offsets and members is forgotten (Kafka's Dead group), so a later commit under its id starts a
/// new group. A group's protocol type and empty time are saved in the metadata store each round, so a restart does
/// not reset them; a group that had members when the broker stopped counts as empty from the restart. Groups kept
/// by a broker from before states were saved lose each offset by its commit time, but only once this broker has run
/// for the retention (whether they had members is unknown, and a quiet member may not have committed for long).
/// </summary>
public sealed partial class GroupOffsetExpiry(GroupCoordinator groups, IMetadataStore metadata, GroupLagTracker lag, TimeSpan retention, ILogger<GroupOffsetExpiry> logger)
{
    /// <summary>One expiry round as of <paramref name="now"/>; returns how many partitions' offsets it deleted.</summary>
    public async Task<int> RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        DateTimeOffset cutoff = now - retention;
        Dictionary<string, SavedGroupState> saved = (await metadata.ListGroupStatesAsync(cancellationToken)).ToDictionary(s => s.GroupId, StringComparer.Ordinal);
        await SaveStatesAsync(saved, cancellationToken);

        int expired = 0;
        // Groups without members that keep offsets: only their empty-since times are worth keeping in memory.
        var withOffsets = new HashSet<string>(StringComparer.Ordinal);
        foreach (string groupId in await metadata.ListGroupsAsync(cancellationToken))
        {
            GroupActivity? activity = groups.Activity(groupId);
            IReadOnlyList<(string Topic, int Partition)> deleted;
            if (activity is { HasMembers: true } active)
            {
                // Members of another protocol, a rebalance, or subscriptions that cannot be read: nothing is known to be unused.
                deleted = active.Stable && active.ProtocolType == "consumer" && active.Subscribed is { } subscribed
                    ? await metadata.DeleteExpiredGroupOffsetsAsync(groupId, now, cutoff, null, subscribed, cancellationToken)
                    : [];
            }
            else
            {
                // No protocol type known anywhere: a group that only commits, whose offsets expire each by its commit.
                // A saved empty one is a group from before states were saved: by commit too, once this broker has run for
                // the retention (whether it had members is unknown).
                SavedGroupState? state = saved.GetValueOrDefault(groupId);
                string? protocolType = string.IsNullOrEmpty(activity?.ProtocolType) ? state?.ProtocolType : activity.Value.ProtocolType;
                bool legacy = protocolType == string.Empty;
                var started = new DateTimeOffset(groups.Started, TimeSpan.Zero);
                DateTimeOffset? emptySince = protocolType is null || legacy
                    ? null
                    : activity?.EmptySince is { } known ? new DateTimeOffset(known, TimeSpan.Zero) : state?.EmptySince ?? started;
                deleted = legacy && started > cutoff ? [] : await metadata.DeleteExpiredGroupOffsetsAsync(groupId, now, cutoff, emptySince, null, cancellationToken);
                if (deleted.Count > 0 && (await metadata.FetchGroupOffsetsAsync(groupId, cancellationToken)).Count == 0)
                {
                    // Dead, as in Kafka: a commit under this id from now on makes a new group, not one empty since long ago.
                    groups.Delete(groupId, out _);
                }
                else
                {
                    withOffsets.Add(groupId);
                }
            }

            if (deleted.Count > 0)
            {
                lag.Deleted(groupId, deleted);
                LogExpired(logger, deleted.Count, groupId);
                expired += deleted.Count;
            }
        }

        groups.KeepEmptySinceOnlyFor(withOffsets);
        await metadata.DeleteGroupStatesWithoutOffsetsAsync(groups.All.Select(g => g.GroupId).ToHashSet(StringComparer.Ordinal), cancellationToken);
        return expired;
    }

    /// <summary>Saves the protocol type and empty time of every group in memory with a protocol type, where they changed.</summary>
    private async Task SaveStatesAsync(Dictionary<string, SavedGroupState> saved, CancellationToken cancellationToken)
    {
        foreach (ConsumerGroup group in groups.All)
        {
            if (groups.Activity(group.GroupId) is not { ProtocolType: { Length: > 0 } protocolType } activity)
            {
                continue;
            }

            // Milliseconds, as stored, so an unchanged state compares equal to the saved one.
            DateTimeOffset? emptySince = activity.EmptySince is { } at ? DateTimeOffset.FromUnixTimeMilliseconds(new DateTimeOffset(at, TimeSpan.Zero).ToUnixTimeMilliseconds()) : null;
            var state = new SavedGroupState(group.GroupId, protocolType, emptySince);
            if (saved.GetValueOrDefault(group.GroupId) != state)
            {
                await metadata.SaveGroupStateAsync(state, cancellationToken);
                saved[group.GroupId] = state;
            }
        }
    }

    public Task RunAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        PeriodicRounds.RunAsync(interval, async (now, ct) => await RunOnceAsync(now, ct), e => LogFailed(logger, e), cancellationToken);

    [LoggerMessage(Level = LogLevel.Information, Message = "Expired the committed offsets of {Partitions} partitions of group {GroupId} (offsets.retention.minutes)")]
    private static partial void LogExpired(ILogger logger, int partitions, string groupId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Offset expiry round failed; retrying next round")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
