using SharedLog.Protocol;

namespace SharedLog.Broker.Coordinators;

public enum GroupState
{
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

/// <summary>One member of a classic consumer group.</summary>
public sealed class GroupMember(string memberId)
{
    public string MemberId { get; } = memberId;

    public string? GroupInstanceId { get; set; }

    public string ClientId { get; set; } = string.Empty;

    public string ClientHost { get; set; } = string.Empty;

    public int SessionTimeoutMs { get; set; }

    public int RebalanceTimeoutMs { get; set; }

    public string ProtocolType { get; set; } = string.Empty;

    public List<(string Name, byte[] Metadata)> Protocols { get; set; } = [];

    public byte[] Assignment { get; set; } = [];

    public DateTime LastSeen { get; set; } = DateTime.UtcNow;

    internal TaskCompletionSource<JoinResult>? PendingJoin { get; set; }

    internal TaskCompletionSource<SyncResult>? PendingSync { get; set; }

    /// <summary>The leader's SyncGroup made the group Stable before this member sent its own: it has until the rebalance deadline.</summary>
    internal bool AwaitingSync { get; set; }
}

/// <param name="SkipAssignment">JoinGroup v9+: the leader gets the members but must not compute an assignment (a static leader rejoined a stable group).</param>
public sealed record JoinResult(ErrorCode Error, int GenerationId, string? ProtocolType, string? ProtocolName, string LeaderId, string MemberId, IReadOnlyList<GroupMember> Members, bool SkipAssignment = false);

public sealed record SyncResult(ErrorCode Error, string? ProtocolType, string? ProtocolName, byte[] Assignment);

/// <summary>A classic (pre-KIP-848) consumer group: members, generation, leader and assignments.</summary>
public sealed class ConsumerGroup(string groupId)
{
    public string GroupId { get; } = groupId;

    public GroupState State { get; internal set; } = GroupState.Empty;

    public int GenerationId { get; internal set; }

    public string? ProtocolType { get; internal set; }

    public string? ProtocolName { get; internal set; }

    public string? LeaderId { get; internal set; }

    internal Dictionary<string, GroupMember> Members { get; } = new(StringComparer.Ordinal);

    internal DateTime RebalanceDeadline { get; set; }

    /// <summary>Ids handed out with MEMBER_ID_REQUIRED and not yet used to join.</summary>
    internal Dictionary<string, DateTime> PendingMemberIds { get; } = new(StringComparer.Ordinal);

    /// <summary>When the group last became empty (no members, no member ids handed out); null while it is not.</summary>
    internal DateTime? EmptySince { get; set; }

    /// <summary>Taken out of the coordinator (expired or deleted): a join that found it just before must look again.</summary>
    internal bool Removed { get; set; }

    /// <summary>A new group waits this long for more members before its first rebalance completes.</summary>
    internal DateTime InitialDelayUntil { get; set; }

    /// <summary>The initial delay this rebalance started with (0 for none): each extension is at most this long.</summary>
    internal int InitialDelayStepMs { get; set; }

    /// <summary>What is left of the rebalance timeout for extending the initial delay (Kafka's InitialDelayedJoin remainingMs).</summary>
    internal int InitialDelayRemainingMs { get; set; }

    /// <summary>A member joined the group's first rebalance during the current delay: when it ends, the group waits once more.</summary>
    internal bool NewMemberAdded { get; set; }

    internal object Sync { get; } = new();

    public IReadOnlyList<GroupMember> Snapshot()
    {
        lock (Sync)
        {
            return [.. Members.Values];
        }
    }

    /// <summary>
    /// The topics the members of a consumer-protocol group subscribe to (for OffsetDelete, KIP-496): empty when the
    /// group has no members, null when it has members of another protocol or a subscription that cannot be read.
    /// </summary>
    public HashSet<string>? SubscribedTopics()
    {
        lock (Sync)
        {
            var topics = new HashSet<string>(StringComparer.Ordinal);
            if (Members.Count == 0)
            {
                return topics;
            }

            if (ProtocolType != "consumer")
            {
                return null;
            }

            foreach (GroupMember member in Members.Values)
            {
                byte[]? metadata = member.Protocols.Find(p => p.Name == ProtocolName).Metadata;
                if (metadata is null || !ConsumerSubscription.TryReadTopics(metadata, topics))
                {
                    return null;
                }
            }

            return topics;
        }
    }
}

/// <summary>The start of Kafka's ConsumerProtocolSubscription: int16 version, then the subscribed topic names.</summary>
internal static class ConsumerSubscription
{
    public static bool TryReadTopics(ReadOnlySpan<byte> metadata, HashSet<string> into)
    {
        if (metadata.Length < 6)
        {
            return false;
        }

        int count = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(metadata[2..]);
        int at = 6;
        if (count < 0 || count > (metadata.Length - at) / 2)
        {
            return false;
        }

        for (int i = 0; i < count; i++)
        {
            if (metadata.Length - at < 2)
            {
                return false;
            }

            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt16BigEndian(metadata[at..]);
            at += 2;
            if (length < 0 || length > metadata.Length - at)
            {
                return false;
            }

            into.Add(System.Text.Encoding.UTF8.GetString(metadata.Slice(at, length)));
            at += length;
        }

        return true;
    }
}

/// <summary>
/// The classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup): rebalances complete when
/// every known member has rejoined or the rebalance timeout passes; members whose session times out
/// are removed; a static member (group.instance.id, KIP-345) that joins again takes its old place and
/// assignment under a new member id, and the old id is fenced.
/// New members must rejoin with the id they are given (KIP-394). State is in memory: after a broker
/// restart groups rebalance from scratch, while committed offsets live in the metadata store.
/// </summary>
/// <summary>A group as offset expiry sees it; see <see cref="GroupCoordinator.Activity"/>.</summary>
public readonly record struct GroupActivity(bool HasMembers, bool Stable, string? ProtocolType, DateTime? EmptySince, HashSet<string>? Subscribed);

public sealed class GroupCoordinator : IDisposable
{
    private readonly Dictionary<string, ConsumerGroup> _groups = new(StringComparer.Ordinal);
    private readonly Lock _groupsLock = new();
    private readonly int _initialRebalanceDelayMs;
    private readonly TimeSpan _emptyGroupRetention;
    private readonly ITimer _timer;
    private readonly DateTime _started = DateTime.UtcNow;

    // Sessions, deadlines and delays are measured on the monotonic clock, as Kafka's coordinator timer runs on
    // System.nanoTime: a stepped system clock (NTP, a resumed VM) must neither expire every member at once nor keep a
    // dead one for the size of the step. Times read as a wall-clock reading taken once, advanced by elapsed time.
    private readonly TimeProvider _time;
    private readonly DateTime _clockOrigin;
    private readonly long _clockOriginTimestamp;

    /// <summary>The coordinator's now: the wall clock at its start plus the monotonic time elapsed since.</summary>
    internal DateTime Now => _clockOrigin + _time.GetElapsedTime(_clockOriginTimestamp);

    /// <summary>Kafka's defaults of group.min.session.timeout.ms and group.max.session.timeout.ms.</summary>
    public const int DefaultMinSessionTimeoutMs = 6000, DefaultMaxSessionTimeoutMs = 30 * 60 * 1000;

    private readonly int _minSessionTimeoutMs;
    private readonly int _maxSessionTimeoutMs;

    /// <summary>When each group forgotten after staying empty became empty, and its protocol type; under <see cref="_groupsLock"/>.</summary>
    private readonly Dictionary<string, (DateTime EmptySince, string? ProtocolType)> _forgottenEmptySince = new(StringComparer.Ordinal);

    /// <param name="initialRebalanceDelayMs">group.initial.rebalance.delay.ms.</param>
    /// <param name="emptyGroupRetention">
    /// How long a group without members stays in memory (10 minutes by default, Kafka's offsets.retention.check.interval.ms).
    /// Its committed offsets are in the metadata store and keep it listed by ListGroups.
    /// </param>
    /// <param name="minSessionTimeoutMs">group.min.session.timeout.ms: a join asking for less gets INVALID_SESSION_TIMEOUT.</param>
    /// <param name="maxSessionTimeoutMs">group.max.session.timeout.ms: a join asking for more gets INVALID_SESSION_TIMEOUT.</param>
    /// <param name="time">The clocks and the 100 ms check's timer (the system's by default); only its monotonic timestamps measure time.</param>
    public GroupCoordinator(
        int initialRebalanceDelayMs, TimeSpan? emptyGroupRetention = null, int minSessionTimeoutMs = DefaultMinSessionTimeoutMs,
        int maxSessionTimeoutMs = DefaultMaxSessionTimeoutMs, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _clockOrigin = _time.GetUtcNow().UtcDateTime;
        _clockOriginTimestamp = _time.GetTimestamp();
        _initialRebalanceDelayMs = initialRebalanceDelayMs;
        _minSessionTimeoutMs = minSessionTimeoutMs;
        _maxSessionTimeoutMs = maxSessionTimeoutMs;
        _emptyGroupRetention = emptyGroupRetention ?? TimeSpan.FromMinutes(10);
        _timer = _time.CreateTimer(_ => Tick(), null, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100));
    }

    public ConsumerGroup? Find(string groupId)
    {
        lock (_groupsLock)
        {
            return _groups.GetValueOrDefault(groupId);
        }
    }

    /// <summary>When this coordinator started: groups it has not seen are empty since then at the latest.</summary>
    public DateTime Started => _started;

    /// <summary>
    /// What offset expiry (KIP-211) needs of a group this coordinator knows: whether it has members (or member ids
    /// handed out), is Stable, its protocol type, since when it has been empty, and the topics its members subscribe
    /// to (null when unknown). Null for a group not seen since this coordinator started.
    /// </summary>
    public GroupActivity? Activity(string groupId)
    {
        lock (_groupsLock)
        {
            if (_groups.TryGetValue(groupId, out ConsumerGroup? group))
            {
                lock (group.Sync)
                {
                    bool empty = group.Members.Count == 0 && group.PendingMemberIds.Count == 0;
                    return new GroupActivity(!empty, group.State == GroupState.Stable, group.ProtocolType, empty ? group.EmptySince ?? Now : null, empty ? null : group.SubscribedTopics());
                }
            }

            return _forgottenEmptySince.TryGetValue(groupId, out (DateTime EmptySince, string? ProtocolType) forgotten)
                ? new GroupActivity(false, false, forgotten.ProtocolType, forgotten.EmptySince, null)
                : null;
        }
    }

    /// <summary>Keeps the empty-since times of forgotten groups only for <paramref name="groupIds"/> (those with offsets left).</summary>
    public void KeepEmptySinceOnlyFor(IReadOnlySet<string> groupIds)
    {
        lock (_groupsLock)
        {
            foreach (string groupId in _forgottenEmptySince.Keys.Where(id => !groupIds.Contains(id)).ToList())
            {
                _forgottenEmptySince.Remove(groupId);
            }
        }
    }

    public IReadOnlyList<ConsumerGroup> All
    {
        get
        {
            lock (_groupsLock)
            {
                return [.. _groups.Values];
            }
        }
    }

    private ConsumerGroup GetOrCreate(string groupId)
    {
        lock (_groupsLock)
        {
            if (!_groups.TryGetValue(groupId, out ConsumerGroup? group))
            {
                group = new ConsumerGroup(groupId);
                _groups[groupId] = group;
                _forgottenEmptySince.Remove(groupId);
            }

            return group;
        }
    }

    public bool Delete(string groupId, out ErrorCode error)
    {
        lock (_groupsLock)
        {
            if (_groups.TryGetValue(groupId, out ConsumerGroup? group))
            {
                lock (group.Sync)
                {
                    // Checked and marked under one hold of the lock: a join taken in between would leave its member
                    // in a group no longer under the id, its JoinGroup never answered.
                    if (group.Members.Count > 0)
                    {
                        error = ErrorCode.NonEmptyGroup;
                        return false;
                    }

                    group.Removed = true;
                }

                _groups.Remove(groupId);
            }

            // A group made again under this id starts afresh, as Kafka's Dead group does: no old empty time or protocol type.
            _forgottenEmptySince.Remove(groupId);
        }

        error = ErrorCode.None;
        return true;
    }

    public Task<JoinResult> JoinAsync(
        string groupId, string memberId, string? groupInstanceId, string protocolType, List<(string Name, byte[] Metadata)> protocols,
        int sessionTimeoutMs, int rebalanceTimeoutMs, string clientId, string clientHost, bool requireKnownMemberId, bool canSkipAssignment = false)
    {
        if (string.IsNullOrEmpty(groupId))
        {
            return Task.FromResult(Failed(ErrorCode.InvalidGroupId, memberId));
        }

        if (sessionTimeoutMs < _minSessionTimeoutMs || sessionTimeoutMs > _maxSessionTimeoutMs)
        {
            return Task.FromResult(Failed(ErrorCode.InvalidSessionTimeout, memberId));
        }

        // As Kafka's getOrMaybeCreateGroup: a join with a member id does not make the group (a phantom Empty group would
        // be listed, and would restart a forgotten group's offsets.retention.minutes clock). One without makes it, even
        // when refused for its protocols, as Kafka does.
        if (!string.IsNullOrEmpty(memberId) && Find(groupId) is null)
        {
            return Task.FromResult(Failed(ErrorCode.UnknownMemberId, memberId));
        }

        ConsumerGroup group = GetOrCreate(groupId);
        lock (group.Sync)
        {
            if (group.Removed)
            {
                // Expired or deleted between the lookup and the lock: join the group that stands under the id now.
                return JoinAgainAsync(groupId, memberId, groupInstanceId, protocolType, protocols, sessionTimeoutMs, rebalanceTimeoutMs, clientId, clientHost, requireKnownMemberId, canSkipAssignment);
            }

            if (protocols.Count == 0
                || (group.ProtocolType is not null && group.Members.Count > 0 && group.ProtocolType != protocolType)
                || !SharesProtocol(group, protocols, memberId))
            {
                return Task.FromResult(Failed(ErrorCode.InconsistentGroupProtocol, memberId));
            }

            GroupMember? member = null;
            bool known = true;
            GroupMember? replaced = null;
            if (groupInstanceId is not null && FindStatic(group, groupInstanceId) is { } existing)
            {
                if (!string.IsNullOrEmpty(memberId) && memberId != existing.MemberId)
                {
                    return Task.FromResult(Failed(ErrorCode.FencedInstanceId, memberId));
                }

                if (string.IsNullOrEmpty(memberId))
                {
                    replaced = existing;
                    member = ReplaceStatic(group, existing, clientId);
                }
                else
                {
                    member = existing;
                }
            }

            if (member is null && !string.IsNullOrEmpty(memberId) && !group.Members.TryGetValue(memberId, out member))
            {
                if (!group.PendingMemberIds.Remove(memberId))
                {
                    return Task.FromResult(Failed(ErrorCode.UnknownMemberId, memberId));
                }

                // The id handed out with MEMBER_ID_REQUIRED: the member now joins with it.
                member = new GroupMember(memberId) { GroupInstanceId = groupInstanceId };
                group.Members[memberId] = member;
                known = false;
            }

            if (member is null)
            {
                string newId = $"{(string.IsNullOrEmpty(clientId) ? "member" : clientId)}-{Guid.NewGuid():N}";
                if (requireKnownMemberId && groupInstanceId is null)
                {
                    // KIP-394: hand out the id first; the member rejoins with it.
                    // Until the member's session timeout: a client that never comes back must not stay here for good.
                    group.PendingMemberIds[newId] = Now.AddMilliseconds(sessionTimeoutMs);
                    return Task.FromResult(Failed(ErrorCode.MemberIdRequired, newId));
                }

                member = new GroupMember(newId) { GroupInstanceId = groupInstanceId };
                group.Members[newId] = member;
                known = false;
            }

            member.ClientId = clientId;
            member.ClientHost = clientHost;
            member.SessionTimeoutMs = sessionTimeoutMs;
            member.RebalanceTimeoutMs = rebalanceTimeoutMs;
            member.ProtocolType = protocolType;
            if (group.Members.Count == 1)
            {
                // As Kafka: the first member of an empty group sets its protocol type at once (not when the join completes),
                // so a member of another type joining meanwhile is refused, and a group id reused by another type after it
                // emptied takes the new type (the check above compares later joiners with it).
                group.ProtocolType = protocolType;
            }

            bool changed = !SameProtocols(member.Protocols, protocols);
            member.Protocols = protocols;
            member.LastSeen = Now;
            member.PendingJoin?.TrySetResult(Failed(ErrorCode.RebalanceInProgress, member.MemberId));
            var join = new TaskCompletionSource<JoinResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            member.PendingJoin = join;

            // As Kafka, a known member joining again with unchanged protocols gets this generation's response again,
            // without a rebalance: a follower of a stable group, or any member while the group waits for its assignment
            // (it lost its JoinGroup response to a disconnect; a new rebalance would abort every member's SyncGroup).
            // Not a restarted static member while the group waits for its assignment: the leader was given the old member
            // id and assigns to it, so the new one would get nothing; Kafka rebalances then.
            bool awaitingAssignment = group.State == GroupState.CompletingRebalance && replaced is null;
            if (known && !changed && (awaitingAssignment || (group.State == GroupState.Stable && member.MemberId != group.LeaderId)))
            {
                join.TrySetResult(ResultFor(group, member));
                member.PendingJoin = null;
                return join.Task;
            }

            if (replaced is not null && group.State == GroupState.Stable && SelectProtocol(group) == group.ProtocolName)
            {
                // KIP-345, as Kafka: a restarted static member takes its place in a stable group without a rebalance
                // (its subscription bytes may differ, e.g. the Java client's generation) unless the group's protocol
                // would change. A leader must not assign again: v9+ is told to skip the assignment, older versions
                // are given the replaced id as leader, so they sync as a follower and get their assignment back.
                member.PendingJoin = null;
                join.TrySetResult(member.MemberId != group.LeaderId ? ResultFor(group, member)
                    : canSkipAssignment ? ResultFor(group, member) with { SkipAssignment = true }
                    : ResultFor(group, member) with { LeaderId = replaced.MemberId, Members = [] });
                return join.Task;
            }

            if (group.State != GroupState.PreparingRebalance)
            {
                StartRebalance(group, group.State == GroupState.Empty ? _initialRebalanceDelayMs : 0);
            }
            else if (!known && group.InitialDelayStepMs > 0)
            {
                // As Kafka's coordinator: members still arriving while a group leaves Empty (its first generation, or a
                // whole fleet restarted) extend the wait, so a fleet starting over a few seconds forms one generation
                // instead of one per arrival.
                group.NewMemberAdded = true;
            }

            TryCompleteJoin(group);
            return join.Task;
        }
    }

    private async Task<JoinResult> JoinAgainAsync(
        string groupId, string memberId, string? groupInstanceId, string protocolType, List<(string Name, byte[] Metadata)> protocols,
        int sessionTimeoutMs, int rebalanceTimeoutMs, string clientId, string clientHost, bool requireKnownMemberId, bool canSkipAssignment)
    {
        // Off the removed group's lock first: the lookup takes the coordinator's lock, which is always taken before a group's.
        await Task.Yield();
        return await JoinAsync(groupId, memberId, groupInstanceId, protocolType, protocols, sessionTimeoutMs, rebalanceTimeoutMs, clientId, clientHost, requireKnownMemberId, canSkipAssignment);
    }

    private static GroupMember? FindStatic(ConsumerGroup group, string groupInstanceId)
    {
        foreach (GroupMember member in group.Members.Values)
        {
            if (member.GroupInstanceId == groupInstanceId)
            {
                return member;
            }
        }

        return null;
    }

    /// <summary>
    /// KIP-345, as Kafka: a static member joining without its member id (it restarted, or a second process has
    /// the same group.instance.id) takes the place of the old one under a new member id, keeping its assignment;
    /// the old member id is fenced from then on (FENCED_INSTANCE_ID, fatal for the Java client), so two
    /// processes never consume the same partitions unknowingly.
    /// </summary>
    private static GroupMember ReplaceStatic(ConsumerGroup group, GroupMember old, string clientId)
    {
        string newId = $"{(string.IsNullOrEmpty(clientId) ? "member" : clientId)}-{Guid.NewGuid():N}";
        var replacement = new GroupMember(newId)
        {
            GroupInstanceId = old.GroupInstanceId,
            Protocols = old.Protocols,
            Assignment = old.Assignment,
        };
        group.Members.Remove(old.MemberId);
        group.Members[newId] = replacement;
        if (group.LeaderId == old.MemberId)
        {
            group.LeaderId = newId;
        }

        old.PendingJoin?.TrySetResult(Failed(ErrorCode.FencedInstanceId, old.MemberId));
        old.PendingSync?.TrySetResult(new SyncResult(ErrorCode.FencedInstanceId, null, null, []));
        return replacement;
    }

    /// <summary>A request naming a static instance under a member id that is no longer the instance's.</summary>
    private static bool IsFenced(ConsumerGroup group, string? groupInstanceId, string memberId) =>
        groupInstanceId is not null && FindStatic(group, groupInstanceId) is { } current && current.MemberId != memberId;

    private static bool SameProtocols(List<(string Name, byte[] Metadata)> a, List<(string Name, byte[] Metadata)> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Name == p.Second.Name && p.First.Metadata.AsSpan().SequenceEqual(p.Second.Metadata));

    private static bool SharesProtocol(ConsumerGroup group, List<(string Name, byte[] Metadata)> protocols, string memberId)
    {
        // Sets, not nested scans: a member may list any number of protocols.
        List<HashSet<string>> others = [.. group.Members.Values.Where(m => m.MemberId != memberId).Select(ProtocolNames)];
        return others.Count == 0 || protocols.Exists(p => others.TrueForAll(names => names.Contains(p.Name)));
    }

    private static HashSet<string> ProtocolNames(GroupMember member) => new(member.Protocols.Select(p => p.Name), StringComparer.Ordinal);

    private static JoinResult Failed(ErrorCode error, string memberId) => new(error, -1, null, null, string.Empty, memberId, []);

    private void StartRebalance(ConsumerGroup group, int delayMs)
    {
        group.State = GroupState.PreparingRebalance;
        DateTime now = Now;
        group.RebalanceDeadline = now.AddMilliseconds(Math.Max(MaxRebalanceTimeoutMs(group), delayMs));
        group.InitialDelayUntil = now.AddMilliseconds(delayMs);
        group.InitialDelayStepMs = delayMs;
        group.InitialDelayRemainingMs = delayMs > 0 ? Math.Max(MaxRebalanceTimeoutMs(group) - delayMs, 0) : 0;
        group.NewMemberAdded = false;
        foreach (GroupMember m in group.Members.Values)
        {
            ReleaseSync(m, new SyncResult(ErrorCode.RebalanceInProgress, null, null, []), now);
        }
    }

    /// <summary>The longest rebalance timeout of the group's members (0 without members): how long a rebalance phase may take.</summary>
    private static int MaxRebalanceTimeoutMs(ConsumerGroup group)
    {
        int longest = 0;
        foreach (GroupMember member in group.Members.Values)
        {
            longest = Math.Max(longest, member.RebalanceTimeoutMs);
        }

        return longest;
    }

    /// <summary>
    /// Answers a member waiting in SyncGroup. Its session starts again from the answer, as Kafka's: the member did not
    /// heartbeat while it waited (librdkafka and kafkajs do not), so its last sign of life may be older than its session
    /// timeout, and it would be expired before it could heartbeat or rejoin.
    /// </summary>
    private static void ReleaseSync(GroupMember member, SyncResult result, DateTime now)
    {
        if (member.PendingSync is { } pending)
        {
            member.PendingSync = null;
            member.LastSeen = now;
            pending.TrySetResult(result);
        }
    }

    /// <summary>Completes the join phase when every member has rejoined (after any initial delay) or the deadline passed.</summary>
    private void TryCompleteJoin(ConsumerGroup group)
    {
        if (group.State != GroupState.PreparingRebalance)
        {
            return;
        }

        DateTime now = Now;
        // As Kafka, members handed an id (MEMBER_ID_REQUIRED) and expected back count too: without them a scale-out
        // by several members takes a rebalance per member. Their ids expire after their session timeout. Not in a new
        // group's first rebalance: Kafka's InitialDelayedJoin ends with its delay whoever has not come back, so a client
        // that died after being handed an id does not hold the group's first generation for its whole session timeout.
        bool initialDelayedJoin = group.InitialDelayStepMs > 0;
        bool allJoined = (initialDelayedJoin || group.PendingMemberIds.Count == 0) && group.Members.Values.All(m => m.PendingJoin is not null);
        if (now >= group.InitialDelayUntil && group.NewMemberAdded && group.InitialDelayRemainingMs > 0)
        {
            // Kafka's InitialDelayedJoin: the delay ran out with new members in it; wait once more, within the rebalance timeout.
            int extension = Math.Min(group.InitialDelayStepMs, group.InitialDelayRemainingMs);
            group.InitialDelayUntil = now.AddMilliseconds(extension);
            group.InitialDelayRemainingMs -= extension;
            group.NewMemberAdded = false;
        }

        if (!(allJoined && now >= group.InitialDelayUntil) && now < group.RebalanceDeadline)
        {
            return;
        }

        // As Kafka: dynamic members that did not rejoin are gone; static ones stay in the next generation with their
        // last subscription (the leader assigns them partitions) until they come back or their session times out.
        foreach (GroupMember late in group.Members.Values.Where(m => m.PendingJoin is null && m.GroupInstanceId is null).ToList())
        {
            group.Members.Remove(late.MemberId);
        }

        if (group.Members.Count == 0)
        {
            group.State = GroupState.Empty;
            group.GenerationId++;
            group.LeaderId = null;
            return;
        }

        GroupMember? joinedLeader = group.LeaderId is not null && group.Members.TryGetValue(group.LeaderId, out GroupMember? current) && current.PendingJoin is not null
            ? current
            : group.Members.Values.FirstOrDefault(m => m.PendingJoin is not null);
        if (joinedLeader is null)
        {
            // Only absent static members: nobody can assign. Wait again; their session timeouts end it.
            group.RebalanceDeadline = now.AddMilliseconds(MaxRebalanceTimeoutMs(group));
            return;
        }

        group.GenerationId++;
        group.ProtocolType = joinedLeader.ProtocolType;
        group.LeaderId = joinedLeader.MemberId;
        group.ProtocolName = SelectProtocol(group);
        group.State = GroupState.CompletingRebalance;

        // Members now have the rebalance timeout to send SyncGroup (Tick removes those that do not).
        group.RebalanceDeadline = now.AddMilliseconds(MaxRebalanceTimeoutMs(group));
        foreach (GroupMember m in group.Members.Values)
        {
            m.Assignment = [];
            m.LastSeen = now;
            TaskCompletionSource<JoinResult>? pending = m.PendingJoin;
            m.PendingJoin = null;
            pending?.TrySetResult(ResultFor(group, m));
        }
    }

    /// <summary>
    /// As Kafka: among the protocols every member supports, each member votes for the one it lists first, and the most
    /// votes win (a tie goes to the leader's preference). Members that order their assignors differently (a rolling
    /// change of partition.assignment.strategy) thereby agree on what most of them prefer.
    /// </summary>
    private static string SelectProtocol(ConsumerGroup group)
    {
        GroupMember leader = group.Members[group.LeaderId!];
        List<HashSet<string>> supported = [.. group.Members.Values.Select(ProtocolNames)];
        var candidates = new List<string>();
        var candidateIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach ((string name, _) in leader.Protocols)
        {
            if (!candidateIndex.ContainsKey(name) && supported.TrueForAll(names => names.Contains(name)))
            {
                candidateIndex[name] = candidates.Count;
                candidates.Add(name);
            }
        }

        if (candidates.Count == 0)
        {
            return leader.Protocols[0].Name;
        }

        var votes = new int[candidates.Count];
        foreach (GroupMember member in group.Members.Values)
        {
            foreach ((string name, _) in member.Protocols)
            {
                if (candidateIndex.TryGetValue(name, out int choice))
                {
                    votes[choice]++;
                    break;
                }
            }
        }

        int best = 0;
        for (int i = 1; i < votes.Length; i++)
        {
            if (votes[i] > votes[best])
            {
                best = i;
            }
        }

        return candidates[best];
    }

    private static JoinResult ResultFor(ConsumerGroup group, GroupMember member) => new(
        ErrorCode.None,
        group.GenerationId,
        group.ProtocolType,
        group.ProtocolName,
        group.LeaderId ?? string.Empty,
        member.MemberId,
        member.MemberId == group.LeaderId ? [.. group.Members.Values] : []);

    /// <param name="protocolType">SyncGroup v5+: the protocol type the member believes the group has, or null.</param>
    /// <param name="protocolName">SyncGroup v5+: the protocol the member was told in its JoinGroup response, or null.</param>
    public Task<SyncResult> SyncAsync(string groupId, int generationId, string memberId, IReadOnlyDictionary<string, byte[]> assignments, string? groupInstanceId = null, string? protocolType = null, string? protocolName = null)
    {
        if (string.IsNullOrEmpty(groupId))
        {
            return Task.FromResult(new SyncResult(ErrorCode.InvalidGroupId, null, null, []));
        }

        ConsumerGroup? group = Find(groupId);
        if (group is null)
        {
            return Task.FromResult(new SyncResult(ErrorCode.UnknownMemberId, null, null, []));
        }

        lock (group.Sync)
        {
            if (IsFenced(group, groupInstanceId, memberId))
            {
                return Task.FromResult(new SyncResult(ErrorCode.FencedInstanceId, null, null, []));
            }

            if (!group.Members.TryGetValue(memberId, out GroupMember? member))
            {
                return Task.FromResult(new SyncResult(ErrorCode.UnknownMemberId, null, null, []));
            }

            if (generationId != group.GenerationId)
            {
                return Task.FromResult(new SyncResult(ErrorCode.IllegalGeneration, null, null, []));
            }

            // KIP-559, as Kafka: a member whose idea of the group's protocol is not the group's must not apply an
            // assignment made for another protocol.
            if ((protocolType is not null && protocolType != group.ProtocolType) || (protocolName is not null && protocolName != group.ProtocolName))
            {
                return Task.FromResult(new SyncResult(ErrorCode.InconsistentGroupProtocol, null, null, []));
            }

            member.LastSeen = Now;
            switch (group.State)
            {
                case GroupState.PreparingRebalance:
                    return Task.FromResult(new SyncResult(ErrorCode.RebalanceInProgress, null, null, []));
                case GroupState.Stable:
                    member.AwaitingSync = false;
                    return Task.FromResult(new SyncResult(ErrorCode.None, group.ProtocolType, group.ProtocolName, member.Assignment));
            }

            var sync = new TaskCompletionSource<SyncResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            member.PendingSync = sync;
            if (memberId == group.LeaderId)
            {
                foreach (GroupMember m in group.Members.Values)
                {
                    m.Assignment = assignments.TryGetValue(m.MemberId, out byte[]? assignment) ? assignment : [];
                }

                group.State = GroupState.Stable;
                DateTime now = Now;
                foreach (GroupMember m in group.Members.Values)
                {
                    m.AwaitingSync = m.PendingSync is null;
                    ReleaseSync(m, new SyncResult(ErrorCode.None, group.ProtocolType, group.ProtocolName, m.Assignment), now);
                }
            }

            return sync.Task;
        }
    }

    // As Kafka: only the offset and describe/delete APIs take an empty group id; the membership APIs refuse it as invalid,
    // which clients treat as fatal, instead of UNKNOWN_MEMBER_ID, which they retry for good.
    public ErrorCode Heartbeat(string groupId, int generationId, string memberId, string? groupInstanceId = null) =>
        string.IsNullOrEmpty(groupId) ? ErrorCode.InvalidGroupId
        : Find(groupId) is { } group ? CheckMember(group, generationId, memberId, groupInstanceId, forCommit: false) : ErrorCode.UnknownMemberId;

    /// <summary>
    /// A member's standing for heartbeats and commits: known and of the current generation. As in Kafka, a
    /// heartbeat during PreparingRebalance is told to rejoin, but a commit then is taken (the member still owns
    /// its partitions until it rejoins; eager clients commit right there, when their partitions are revoked);
    /// a commit during CompletingRebalance, after the member has joined the next generation, is refused.
    /// </summary>
    private ErrorCode CheckMember(ConsumerGroup group, int generationId, string memberId, string? groupInstanceId, bool forCommit)
    {
        lock (group.Sync)
        {
            if (IsFenced(group, groupInstanceId, memberId))
            {
                return ErrorCode.FencedInstanceId;
            }

            if (!group.Members.TryGetValue(memberId, out GroupMember? member))
            {
                return ErrorCode.UnknownMemberId;
            }

            if (generationId != group.GenerationId)
            {
                // Not a sign of life: a member stuck on an old generation must not be kept alive by it.
                return ErrorCode.IllegalGeneration;
            }

            member.LastSeen = Now;

            GroupState refusedIn = forCommit ? GroupState.CompletingRebalance : GroupState.PreparingRebalance;
            return group.State == refusedIn ? ErrorCode.RebalanceInProgress : ErrorCode.None;
        }
    }

    public ErrorCode Leave(string groupId, string memberId, string? groupInstanceId)
    {
        if (string.IsNullOrEmpty(groupId))
        {
            return ErrorCode.InvalidGroupId;
        }

        ConsumerGroup? group = Find(groupId);
        if (group is null)
        {
            return ErrorCode.UnknownMemberId;
        }

        lock (group.Sync)
        {
            GroupMember? member = groupInstanceId is not null
                ? FindStatic(group, groupInstanceId)
                : group.Members.GetValueOrDefault(memberId);
            if (member is null)
            {
                // As Kafka: a member that leaves before joining with the id it was handed is simply forgotten.
                if (groupInstanceId is null && group.PendingMemberIds.Remove(memberId))
                {
                    TryCompleteJoin(group);
                    return ErrorCode.None;
                }

                return ErrorCode.UnknownMemberId;
            }

            if (groupInstanceId is not null && !string.IsNullOrEmpty(memberId) && member.MemberId != memberId)
            {
                // A replaced instance's old process must not take its successor out of the group.
                return ErrorCode.FencedInstanceId;
            }

            Remove(group, member);
            return ErrorCode.None;
        }
    }

    /// <summary>
    /// Checks a commit's member and generation; generation -1 with no member is a simple (standalone) commit. A commit
    /// with a generation to a group this coordinator does not know is GROUP_ID_NOT_FOUND.
    /// </summary>
    public ErrorCode ValidateCommit(string groupId, int generationId, string memberId, string? groupInstanceId = null)
    {
        ConsumerGroup? group = Find(groupId);
        if (generationId < 0 && (group is null || group.State == GroupState.Empty))
        {
            // As Kafka: a commit from outside group management (generation -1) is taken while the group has no members,
            // whatever member id it carries; to a group with members it is checked as a member's commit.
            return ErrorCode.None;
        }

        return group is null ? ErrorCode.GroupIdNotFound : CheckMember(group, generationId, memberId, groupInstanceId, forCommit: true);
    }

    private void Remove(ConsumerGroup group, GroupMember member)
    {
        group.Members.Remove(member.MemberId);
        member.PendingJoin?.TrySetResult(Failed(ErrorCode.UnknownMemberId, member.MemberId));
        member.PendingSync?.TrySetResult(new SyncResult(ErrorCode.UnknownMemberId, null, null, []));
        if (group.Members.Count == 0)
        {
            group.State = GroupState.Empty;
            group.LeaderId = null;
            group.GenerationId++;
        }
        else if (group.State != GroupState.PreparingRebalance)
        {
            StartRebalance(group, 0);
        }
        else
        {
            TryCompleteJoin(group);
        }
    }

    /// <summary>Expires sessions, member ids and empty groups, and completes joins whose deadline or initial delay has passed.</summary>
    private void Tick()
    {
        DateTime now = Now;
        List<ConsumerGroup>? expired = null;
        foreach (ConsumerGroup group in All)
        {
            lock (group.Sync)
            {
                foreach (GroupMember member in group.Members.Values.ToList())
                {
                    // Members waiting in a join or for their assignment are alive (librdkafka and kafkajs do not
                    // heartbeat while waiting in SyncGroup); others must heartbeat within their session timeout. A
                    // member the removal of another already took out (a join completed past its deadline) is skipped.
                    if (member.PendingJoin is null && member.PendingSync is null && (now - member.LastSeen).TotalMilliseconds > member.SessionTimeoutMs
                        && group.Members.GetValueOrDefault(member.MemberId) == member)
                    {
                        Remove(group, member);
                    }
                }

                if (group.State == GroupState.CompletingRebalance && now >= group.RebalanceDeadline)
                {
                    // As Kafka: members that have not sent SyncGroup within the rebalance timeout are removed (the
                    // group rebalances without them); else a leader that heartbeats but never assigns would hold every
                    // member without partitions for good. Taken before removing: a removal answers the others' syncs.
                    foreach (GroupMember unsynced in group.Members.Values.Where(m => m.PendingSync is null).ToList())
                    {
                        Remove(group, unsynced);
                    }
                }
                else if (group.State == GroupState.Stable && now >= group.RebalanceDeadline)
                {
                    // The same once the leader has synced: as Kafka's pending-sync set, a follower that heartbeats but
                    // never asks for its assignment holds partitions nobody consumes; it goes, and the group rebalances.
                    foreach (GroupMember unsynced in group.Members.Values.Where(m => m.AwaitingSync).ToList())
                    {
                        if (group.Members.GetValueOrDefault(unsynced.MemberId) == unsynced)
                        {
                            Remove(group, unsynced);
                        }
                    }
                }

                foreach ((string pendingId, DateTime deadline) in group.PendingMemberIds)
                {
                    if (deadline < now)
                    {
                        group.PendingMemberIds.Remove(pendingId);
                    }
                }

                bool empty = group.Members.Count == 0 && group.PendingMemberIds.Count == 0;
                group.EmptySince = empty ? group.EmptySince ?? now : null;
                if (empty && now - group.EmptySince >= _emptyGroupRetention)
                {
                    (expired ??= []).Add(group);
                }

                TryCompleteJoin(group);
            }
        }

        foreach (ConsumerGroup group in expired ?? [])
        {
            lock (_groupsLock)
            {
                lock (group.Sync)
                {
                    // Still empty (a member may have joined meanwhile) and still the group under its id.
                    if (group.Members.Count == 0 && group.PendingMemberIds.Count == 0 && _groups.GetValueOrDefault(group.GroupId) == group)
                    {
                        group.Removed = true;
                        _groups.Remove(group.GroupId);
                        _forgottenEmptySince[group.GroupId] = (group.EmptySince ?? now, group.ProtocolType);
                    }
                }
            }
        }
    }

    public void Dispose() => _timer.Dispose();
}
