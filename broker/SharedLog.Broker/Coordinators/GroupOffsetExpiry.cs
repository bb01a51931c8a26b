using Microsoft.Extensions.Logging;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;

namespace SharedLog.Broker.Coordinators;

/// <summary>
/// Expires committed offsets as Kafka's <c>offsets.retention.minutes</c> does since KIP-211. A group without
/// members loses all its offsets once it has been empty for the retention and none of them was committed within
/// it (a consumer on a quiet partition may not have committed for a long time while it was a member). A consumer
/// group with members loses only the offsets of topics no member subscribes to, each after the retention from its
/// own commit. Membership is in memory, so after a broker restart a group's empty time counts from the start.
/// </summary>
public sealed partial class GroupOffsetExpiry(GroupCoordinator groups, IMetadataStore metadata, GroupLagTracker lag, TimeSpan retention, ILogger<GroupOffsetExpiry> logger)
{
    /// <summary>One expiry round as of <paramref name="now"/>; returns how many partitions' offsets it deleted.</summary>
    public async Task<int> RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        DateTimeOffset cutoff = now - retention;
        int expired = 0;
        // Groups without members that keep offsets: only their empty-since times are worth keeping.
        var withOffsets = new HashSet<string>(StringComparer.Ordinal);
        foreach (string groupId in await metadata.ListGroupsAsync(cancellationToken))
        {
            IReadOnlyList<(string Topic, int Partition)> deleted;
            if (groups.EmptySince(groupId) is { } emptySince)
            {
                deleted = emptySince <= cutoff.UtcDateTime ? await metadata.DeleteIdleGroupOffsetsAsync(groupId, cutoff, cancellationToken) : [];
                if (deleted.Count == 0)
                {
                    withOffsets.Add(groupId); // an idle group loses all its offsets or none
                }
            }
            else if (groups.Find(groupId)?.SubscribedTopics() is { Count: > 0 } subscribed)
            {
                deleted = await metadata.DeleteStaleGroupOffsetsAsync(groupId, cutoff, subscribed, cancellationToken);
            }
            else
            {
                // Members of another protocol, or subscriptions that cannot be read: nothing is known to be unused.
                deleted = [];
            }

            if (deleted.Count > 0)
            {
                lag.Deleted(groupId, deleted);
                LogExpired(logger, deleted.Count, groupId);
                expired += deleted.Count;
            }
        }

        groups.KeepEmptySinceOnlyFor(withOffsets);
        return expired;
    }

    public Task RunAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        PeriodicRounds.RunAsync(interval, async (now, ct) => await RunOnceAsync(now, ct), e => LogFailed(logger, e), cancellationToken);

    [LoggerMessage(Level = LogLevel.Information, Message = "Expired the committed offsets of {Partitions} partitions of group {GroupId} (offsets.retention.minutes)")]
    private static partial void LogExpired(ILogger logger, int partitions, string groupId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Offset expiry round failed; retrying next round")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
