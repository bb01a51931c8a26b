using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;

namespace SharedLog.IntegrationTests;

/// <summary>The classic group coordinator on its own: which member requests it takes in which group state.</summary>
public class GroupCoordinatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static Task<JoinResult> JoinAsync(GroupCoordinator groups, string memberId, int sessionTimeoutMs = 10_000) =>
        groups.JoinAsync("g", memberId, null, "consumer", [("range", [0, 1])], sessionTimeoutMs, 10_000, "client", "127.0.0.1", requireKnownMemberId: false);

    [Fact]
    public async Task CommitsOfTheCurrentGenerationAreTakenWhileARebalanceIsPreparedAndRefusedWhileItCompletes()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        JoinResult first = await JoinAsync(groups, string.Empty).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, first.Error);
        SyncResult synced = await groups.SyncAsync("g", first.GenerationId, first.MemberId, new Dictionary<string, byte[]> { [first.MemberId] = [1] }).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, synced.Error);
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
        Assert.Equal(ErrorCode.None, groups.ValidateCommit("g", first.GenerationId, first.MemberId));

        // A commit from outside the group (an admin client's, with no member and generation -1) is refused while
        // the group has members, as Kafka does.
        Assert.Equal(ErrorCode.UnknownMemberId, groups.ValidateCommit("g", -1, string.Empty));
        Assert.Equal(ErrorCode.None, groups.ValidateCommit("no-members-yet", -1, string.Empty));

        // A second member asks to join: the group prepares a rebalance and waits for the first to rejoin.
        Task<JoinResult> second = JoinAsync(groups, string.Empty);
        Assert.Equal(GroupState.PreparingRebalance, groups.Find("g")!.State);

        // As in Kafka: the heartbeat tells the first member to rejoin, but its commit (an eager client commits
        // when its partitions are revoked) is still taken.
        Assert.Equal(ErrorCode.RebalanceInProgress, groups.Heartbeat("g", first.GenerationId, first.MemberId));
        Assert.Equal(ErrorCode.None, groups.ValidateCommit("g", first.GenerationId, first.MemberId));

        // Once both have joined the next generation and wait for their assignment, commits are refused.
        JoinResult rejoined = await JoinAsync(groups, first.MemberId).WaitAsync(Timeout);
        JoinResult joined = await second.WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, ErrorCode.None), (rejoined.Error, joined.Error));
        Assert.Equal(GroupState.CompletingRebalance, groups.Find("g")!.State);
        Assert.Equal(ErrorCode.RebalanceInProgress, groups.ValidateCommit("g", rejoined.GenerationId, rejoined.MemberId));
        Assert.Equal(ErrorCode.IllegalGeneration, groups.ValidateCommit("g", first.GenerationId, first.MemberId));
    }

    [Fact]
    public async Task SessionTimeoutsOutsideTheConfiguredBoundsAreRefusedAndTheBoundsThemselvesTaken()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0, minSessionTimeoutMs: 2000, maxSessionTimeoutMs: 4000);
        Assert.Equal(ErrorCode.InvalidSessionTimeout, (await JoinAsync(groups, string.Empty, sessionTimeoutMs: 1999).WaitAsync(Timeout)).Error);
        Assert.Equal(ErrorCode.InvalidSessionTimeout, (await JoinAsync(groups, string.Empty, sessionTimeoutMs: 4001).WaitAsync(Timeout)).Error);
        Assert.Empty(groups.Find("g")?.Snapshot() ?? []);

        JoinResult shortest = await JoinAsync(groups, string.Empty, sessionTimeoutMs: 2000).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, shortest.Error);
        Assert.Equal(2000, Assert.Single(groups.Find("g")!.Snapshot()).SessionTimeoutMs);
        JoinResult longest = await JoinAsync(groups, shortest.MemberId, sessionTimeoutMs: 4000).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, longest.Error);
        Assert.Equal(4000, Assert.Single(groups.Find("g")!.Snapshot()).SessionTimeoutMs);
    }

    [Fact]
    public async Task AMemberWaitingForItsAssignmentIsNotExpiredByItsSessionTimeout()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300, minSessionTimeoutMs: 1000);
        Task<JoinResult> firstJoin = JoinAsync(groups, string.Empty, sessionTimeoutMs: 1000);
        Task<JoinResult> secondJoin = JoinAsync(groups, string.Empty, sessionTimeoutMs: 1000);
        JoinResult[] joined = await Task.WhenAll(firstJoin, secondJoin).WaitAsync(Timeout);
        JoinResult leader = joined.Single(j => j.MemberId == j.LeaderId);
        JoinResult follower = joined.Single(j => j.MemberId != j.LeaderId);

        // The follower waits in SyncGroup without heartbeating (as librdkafka and kafkajs do) for more than its
        // session timeout, while the leader, still heartbeating, takes its time to assign.
        Task<SyncResult> waiting = groups.SyncAsync("g", follower.GenerationId, follower.MemberId, new Dictionary<string, byte[]>());
        DateTime assignAt = DateTime.UtcNow.AddMilliseconds(2500);
        while (DateTime.UtcNow < assignAt)
        {
            Assert.Equal(ErrorCode.None, groups.Heartbeat("g", leader.GenerationId, leader.MemberId));
            await Task.Delay(100); // the leader's heartbeat interval; the test is about time passing
        }

        DateTime assigning = groups.Now;
        SyncResult assigned = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, new Dictionary<string, byte[]> { [leader.MemberId] = [1], [follower.MemberId] = [2] }).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, assigned.Error);
        SyncResult followerResult = await waiting.WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, followerResult.Error);
        Assert.Equal([2], followerResult.Assignment);

        // Its session starts again from the answer (as Kafka's), else the next check would expire it at once: its
        // last heartbeat is older than its session timeout.
        GroupMember kept = Assert.Single(groups.Find("g")!.Snapshot(), m => m.MemberId == follower.MemberId);
        Assert.True(kept.LastSeen >= assigning, $"last seen {kept.LastSeen:O}, assigned at {assigning:O}");
    }

    /// <summary>
    /// As Kafka's coordinator: a group that emptied (every pod stopped) and fills again waits for members still arriving
    /// as a new group does, so the fleet forms one generation instead of one per arrival. With a 2 s step, joins at 0 s
    /// and 1 s extend the wait past 2 s, and one at 2.5 s is still in it. The clocks and the checks are the test's.
    /// </summary>
    [Fact]
    public async Task MembersStillArrivingExtendTheWaitOfAGroupLeavingEmptyNotOnlyOfANewOne()
    {
        var clock = new ManualClock();
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 2000, time: clock);
        Task<JoinResult> aloneJoin = JoinAsync(groups, string.Empty);
        clock.Elapsed += TimeSpan.FromSeconds(2.1);
        clock.Check();
        JoinResult alone = await aloneJoin.WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, (await groups.SyncAsync("g", alone.GenerationId, alone.MemberId, new Dictionary<string, byte[]> { [alone.MemberId] = [1] }).WaitAsync(Timeout)).Error);
        Assert.Equal(ErrorCode.None, groups.Leave("g", alone.MemberId, null));
        Assert.Equal(GroupState.Empty, groups.Find("g")!.State);

        Task<JoinResult> first = JoinAsync(groups, string.Empty);
        clock.Elapsed += TimeSpan.FromSeconds(1);
        clock.Check();
        Task<JoinResult> second = JoinAsync(groups, string.Empty);
        clock.Elapsed += TimeSpan.FromSeconds(1.5);
        clock.Check();
        Assert.False(first.IsCompleted, "the rebalance completed before its extended wait");
        Task<JoinResult> third = JoinAsync(groups, string.Empty);

        // The wait ends within the rebalance timeout (10 s): checks every second of it complete the join.
        for (int tick = 0; tick < 12 && !first.IsCompleted; tick++)
        {
            clock.Elapsed += TimeSpan.FromSeconds(1);
            clock.Check();
        }

        JoinResult[] joined = await Task.WhenAll(first, second, third).WaitAsync(Timeout);
        Assert.All(joined, j => Assert.Equal((ErrorCode.None, joined[0].GenerationId), (j.Error, j.GenerationId)));
        Assert.True(joined[0].GenerationId > alone.GenerationId);
        Assert.Equal(3, joined.Single(j => j.MemberId == j.LeaderId).Members.Count);
    }

    /// <summary>
    /// Sessions are measured on the monotonic clock, as Kafka's coordinator timer: a system clock stepped forward (NTP, a
    /// resumed VM) does not expire the members, and time that really passes does. The clocks and the checks are the test's.
    /// </summary>
    [Fact]
    public async Task SessionsFollowTheMonotonicClockNotTheWallClock()
    {
        var clock = new ManualClock();
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0, time: clock);
        JoinResult joined = await JoinAsync(groups, string.Empty, sessionTimeoutMs: 10_000).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, (await groups.SyncAsync("g", joined.GenerationId, joined.MemberId, new Dictionary<string, byte[]> { [joined.MemberId] = [1] }).WaitAsync(Timeout)).Error);

        // The wall clock jumps an hour ahead and the coordinator checks its sessions: the member stays.
        clock.WallStep = TimeSpan.FromHours(1);
        clock.Check();
        Assert.Equal(ErrorCode.None, groups.Heartbeat("g", joined.GenerationId, joined.MemberId));

        // Eleven seconds pass on the monotonic clock without a heartbeat: the member's 10 s session is over.
        clock.Elapsed += TimeSpan.FromSeconds(11);
        clock.Check();
        Assert.Empty(groups.Find("g")!.Snapshot());
    }

    /// <summary>A wall clock that can be stepped, a monotonic clock that moves only when told, and checks run when told.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private readonly DateTimeOffset _start = DateTimeOffset.UtcNow;
        private TimerCallback? _check;
        private object? _state;

        public TimeSpan WallStep { get; set; }

        public TimeSpan Elapsed { get; set; }

        public override DateTimeOffset GetUtcNow() => _start + Elapsed + WallStep;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Elapsed.Ticks;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            (_check, _state) = (callback, state);
            return new NeverFires();
        }

        /// <summary>Runs the coordinator's periodic check now.</summary>
        public void Check() => _check!(_state);

        private sealed class NeverFires : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task TheMembershipApisRefuseAnEmptyGroupIdAsInvalid()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        Assert.Equal(ErrorCode.InvalidGroupId, groups.Heartbeat(string.Empty, 1, "m"));
        Assert.Equal(ErrorCode.InvalidGroupId, (await groups.SyncAsync(string.Empty, 1, "m", new Dictionary<string, byte[]>()).WaitAsync(Timeout)).Error);
        Assert.Equal(ErrorCode.InvalidGroupId, groups.Leave(string.Empty, "m", null));
        Assert.Equal(ErrorCode.UnknownMemberId, groups.Heartbeat("g", 1, "m"));
    }

    [Fact]
    public async Task AMemberJoiningAgainUnchangedWhileTheGroupWaitsForItsAssignmentGetsTheSameGenerationBack()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        JoinResult[] joined = await Task.WhenAll(JoinAsync(groups, string.Empty), JoinAsync(groups, string.Empty)).WaitAsync(Timeout);
        JoinResult leader = joined.Single(j => j.MemberId == j.LeaderId);
        JoinResult follower = joined.Single(j => j.MemberId != j.LeaderId);

        // The follower lost its JoinGroup response (a disconnect) and joins again with the same protocols: as Kafka, it
        // gets this generation back at once, and the leader's SyncGroup is not aborted by a new rebalance.
        JoinResult again = await JoinAsync(groups, follower.MemberId).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, follower.GenerationId, leader.MemberId), (again.Error, again.GenerationId, again.LeaderId));
        Task<SyncResult> followerSync = groups.SyncAsync("g", again.GenerationId, follower.MemberId, new Dictionary<string, byte[]>());
        SyncResult leaderSync = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, new Dictionary<string, byte[]> { [leader.MemberId] = [1], [follower.MemberId] = [2] }).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, leaderSync.Error);
        SyncResult assigned = await followerSync.WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, assigned.Error);
        Assert.Equal([2], assigned.Assignment);
    }

    [Fact]
    public async Task MembersHandedAnIdAreWaitedForInTheRebalanceAndForgottenWhenTheyLeave()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        Task<JoinResult> KnownIdJoin(string memberId) =>
            groups.JoinAsync("g", memberId, null, "consumer", [("range", [0, 1])], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: true);
        JoinResult a = await KnownIdJoin((await KnownIdJoin(string.Empty)).MemberId).WaitAsync(Timeout);
        await groups.SyncAsync("g", a.GenerationId, a.MemberId, new Dictionary<string, byte[]> { [a.MemberId] = [1] }).WaitAsync(Timeout);

        // Two more members scale the group out; each is first handed its id (KIP-394).
        JoinResult bId = await KnownIdJoin(string.Empty).WaitAsync(Timeout);
        JoinResult cId = await KnownIdJoin(string.Empty).WaitAsync(Timeout);
        JoinResult dId = await KnownIdJoin(string.Empty).WaitAsync(Timeout);
        Assert.Equal([ErrorCode.MemberIdRequired, ErrorCode.MemberIdRequired, ErrorCode.MemberIdRequired], new[] { bId.Error, cId.Error, dId.Error });

        // D gives up before joining: as Kafka, its leave is taken and its id forgotten.
        Assert.Equal(ErrorCode.None, groups.Leave("g", dId.MemberId, null));

        // B joins and A rejoins: as Kafka, the rebalance still waits for C, so the three share one generation.
        Task<JoinResult> b = KnownIdJoin(bId.MemberId);
        Task<JoinResult> aAgain = KnownIdJoin(a.MemberId);
        Assert.False(aAgain.IsCompleted, "the join completed without the member that was handed an id");
        Task<JoinResult> c = KnownIdJoin(cId.MemberId);
        JoinResult[] all = await Task.WhenAll(aAgain, b, c).WaitAsync(Timeout);
        Assert.All(all, j => Assert.Equal((ErrorCode.None, a.GenerationId + 1), (j.Error, j.GenerationId)));
        Assert.Equal(3, all.Single(j => j.MemberId == j.LeaderId).Members.Count);
    }

    /// <summary>
    /// A new group's first rebalance ends with its initial delay, as Kafka's InitialDelayedJoin, even if a client handed an
    /// id (MEMBER_ID_REQUIRED) never comes back with it: the one that did is not held for the other's session timeout.
    /// </summary>
    [Fact]
    public async Task ANewGroupsFirstRebalanceDoesNotWaitForAnIdThatNeverComesBack()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        Task<JoinResult> Join(string memberId) =>
            groups.JoinAsync("g", memberId, null, "consumer", [("range", [0])], 120_000, 120_000, "client", "127.0.0.1", requireKnownMemberId: true);

        JoinResult stays = await Join(string.Empty).WaitAsync(Timeout);
        JoinResult vanishes = await Join(string.Empty).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.MemberIdRequired, ErrorCode.MemberIdRequired), (stays.Error, vanishes.Error));

        // Only the first comes back; the second's id would stay pending for its 120 s session timeout.
        JoinResult joined = await Join(stays.MemberId).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, stays.MemberId, 1), (joined.Error, joined.LeaderId, joined.Members.Count));
    }

    /// <summary>
    /// As Kafka, the first member of an empty group sets the group's protocol type: another type is refused while the
    /// first join is still waiting, and once the group has emptied, its id can be taken by members of another type.
    /// </summary>
    [Fact]
    public async Task TheFirstMemberOfAnEmptyGroupSetsItsProtocolType()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        Task<JoinResult> Join(string protocolType) =>
            groups.JoinAsync("g", string.Empty, null, protocolType, [("range", [0])], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: false);

        Task<JoinResult> consumerJoin = Join("consumer");
        Assert.False(consumerJoin.IsCompleted);
        Assert.Equal("consumer", groups.Find("g")!.ProtocolType);
        JoinResult connectWhileWaiting = await Join("connect").WaitAsync(Timeout);
        Assert.Equal(ErrorCode.InconsistentGroupProtocol, connectWhileWaiting.Error);

        JoinResult consumer = await consumerJoin.WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, "consumer"), (consumer.Error, consumer.ProtocolType));
        Assert.Equal(ErrorCode.None, groups.Leave("g", consumer.MemberId, null));
        Assert.Equal(GroupState.Empty, groups.Find("g")!.State);

        // The emptied group keeps reporting its last type (as Kafka's ListGroups does) until a member of another type joins.
        Assert.Equal("consumer", groups.Find("g")!.ProtocolType);
        JoinResult[] connect = await Task.WhenAll(Join("connect"), Join("connect")).WaitAsync(Timeout);
        Assert.All(connect, j => Assert.Equal((ErrorCode.None, "connect"), (j.Error, j.ProtocolType)));
        Assert.Equal("connect", groups.Find("g")!.ProtocolType);
    }

    [Fact]
    public async Task TheProtocolMostMembersPreferIsChosenAndASyncNamingAnotherIsRefused()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        Task<JoinResult> Join(params string[] preference) =>
            groups.JoinAsync("g", string.Empty, null, "consumer", [.. preference.Select(p => (p, new byte[] { 0 }))], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: false);

        // The first member (the leader) prefers range; the two others prefer roundrobin: as Kafka, the vote decides.
        Task<JoinResult> leaderJoin = Join("range", "roundrobin");
        JoinResult[] joined = await Task.WhenAll(leaderJoin, Join("roundrobin", "range"), Join("roundrobin", "range")).WaitAsync(Timeout);
        Assert.All(joined, j => Assert.Equal((ErrorCode.None, "roundrobin"), (j.Error, j.ProtocolName)));
        JoinResult leader = joined.Single(j => j.MemberId == j.LeaderId);

        // SyncGroup v5+ names the protocol it assigned for (KIP-559): another one is INCONSISTENT_GROUP_PROTOCOL.
        SyncResult wrongName = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, new Dictionary<string, byte[]>(), null, "consumer", "range").WaitAsync(Timeout);
        SyncResult wrongType = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, new Dictionary<string, byte[]>(), null, "connect", "roundrobin").WaitAsync(Timeout);
        Assert.Equal((ErrorCode.InconsistentGroupProtocol, ErrorCode.InconsistentGroupProtocol), (wrongName.Error, wrongType.Error));
        SyncResult right = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, joined.ToDictionary(j => j.MemberId, _ => new byte[] { 1 }), null, "consumer", "roundrobin").WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, "roundrobin"), (right.Error, right.ProtocolName));
    }

    /// <summary>Two members joining group "g" together (1 s rebalance timeout): the leader and the follower.</summary>
    private static async Task<(JoinResult Leader, JoinResult Follower)> JoinTwoAsync(GroupCoordinator groups)
    {
        Task<JoinResult> Join() => groups.JoinAsync("g", string.Empty, null, "consumer", [("range", [0])], 10_000, 1_000, "client", "127.0.0.1", requireKnownMemberId: false);
        JoinResult[] joined = await Task.WhenAll(Join(), Join()).WaitAsync(Timeout);
        return (joined.Single(j => j.MemberId == j.LeaderId), joined.Single(j => j.MemberId != j.LeaderId));
    }

    /// <summary>Two members joined, and the leader's SyncGroup gave it [1] and the follower [2]: the group is Stable.</summary>
    private static async Task<(JoinResult Leader, JoinResult Follower)> LeaderAssignedAsync(GroupCoordinator groups)
    {
        (JoinResult leader, JoinResult follower) = await JoinTwoAsync(groups);
        SyncResult assigned = await groups.SyncAsync("g", leader.GenerationId, leader.MemberId, new Dictionary<string, byte[]> { [leader.MemberId] = [1], [follower.MemberId] = [2] }).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, assigned.Error);
        return (leader, follower);
    }

    [Fact]
    public async Task ALeaderThatHeartbeatsButNeverAssignsIsRemovedAfterTheRebalanceTimeout()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        (JoinResult leader, JoinResult follower) = await JoinTwoAsync(groups);

        // The follower waits for its assignment; the leader stays alive (heartbeats) but never sends SyncGroup. As
        // Kafka, once the rebalance timeout (1 s) passes the leader is removed and the follower told to rejoin.
        Task<SyncResult> waiting = groups.SyncAsync("g", follower.GenerationId, follower.MemberId, new Dictionary<string, byte[]>());
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!waiting.IsCompleted && DateTime.UtcNow < deadline)
        {
            groups.Heartbeat("g", leader.GenerationId, leader.MemberId);
            await Task.WhenAny(waiting, Task.Delay(100)); // the leader's heartbeat interval
        }

        Assert.True(waiting.IsCompleted, "the follower still waits for an assignment that never comes");
        Assert.Equal(ErrorCode.RebalanceInProgress, (await waiting).Error);
        Assert.Equal([follower.MemberId], groups.Find("g")!.Snapshot().Select(m => m.MemberId));
        Assert.Equal(ErrorCode.UnknownMemberId, groups.Heartbeat("g", leader.GenerationId, leader.MemberId));
    }

    [Fact]
    public async Task AFollowerThatHeartbeatsButNeverSyncsAfterTheLeaderIsRemovedAfterTheRebalanceTimeout()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        // The leader assigns, so the group is Stable; the follower stays alive (heartbeats) but never asks for its
        // assignment. As Kafka's pending-sync set, once the rebalance timeout (1 s) passes it is removed and the
        // group rebalances, so its partitions go to a member that reads them.
        (JoinResult leader, JoinResult follower) = await LeaderAssignedAsync(groups);
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (groups.Find("g")!.Snapshot().Count > 1 && DateTime.UtcNow < deadline)
        {
            groups.Heartbeat("g", leader.GenerationId, leader.MemberId);
            groups.Heartbeat("g", follower.GenerationId, follower.MemberId);
            await Task.Delay(100); // the members' heartbeat interval
        }

        Assert.Equal([leader.MemberId], groups.Find("g")!.Snapshot().Select(m => m.MemberId));
        Assert.Equal(ErrorCode.RebalanceInProgress, groups.Heartbeat("g", leader.GenerationId, leader.MemberId));
    }

    [Fact]
    public async Task AFollowerThatSyncsAfterTheLeaderStaysInTheStableGroup()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300);
        (JoinResult leader, JoinResult follower) = await LeaderAssignedAsync(groups);
        Assert.Equal([2], (await groups.SyncAsync("g", follower.GenerationId, follower.MemberId, new Dictionary<string, byte[]>()).WaitAsync(Timeout)).Assignment);

        // Past the rebalance timeout (1 s) both are still there and the group Stable.
        DateTime until = DateTime.UtcNow + TimeSpan.FromSeconds(2.5);
        while (DateTime.UtcNow < until)
        {
            Assert.Equal(ErrorCode.None, groups.Heartbeat("g", leader.GenerationId, leader.MemberId));
            Assert.Equal(ErrorCode.None, groups.Heartbeat("g", follower.GenerationId, follower.MemberId));
            await Task.Delay(100); // the members' heartbeat interval
        }

        Assert.Equal(2, groups.Find("g")!.Snapshot().Count);
    }

    [Fact]
    public async Task WhenTheLeaderDiesBeforeAssigningTheWaitingFollowerIsToldToRejoinAndCanRejoin()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 300, minSessionTimeoutMs: 1000);
        Task<JoinResult> firstJoin = JoinAsync(groups, string.Empty, sessionTimeoutMs: 1000);
        Task<JoinResult> secondJoin = JoinAsync(groups, string.Empty, sessionTimeoutMs: 1000);
        JoinResult[] joined = await Task.WhenAll(firstJoin, secondJoin).WaitAsync(Timeout);
        JoinResult follower = joined.Single(j => j.MemberId != j.LeaderId);

        // The leader never sends SyncGroup nor heartbeats (killed): once its session ends the follower, waiting in
        // SyncGroup all along, is told to rejoin; that answer starts its session again, so it is still a member.
        DateTime leaderLastSeen = groups.Find("g")!.Snapshot().Single(m => m.MemberId == follower.LeaderId).LastSeen;
        SyncResult told = await groups.SyncAsync("g", follower.GenerationId, follower.MemberId, new Dictionary<string, byte[]>()).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.RebalanceInProgress, told.Error);
        GroupMember kept = Assert.Single(groups.Find("g")!.Snapshot());
        Assert.Equal(follower.MemberId, kept.MemberId);
        Assert.True(kept.LastSeen > leaderLastSeen.AddMilliseconds(1000), $"last seen {kept.LastSeen:O}, the leader's {leaderLastSeen:O}");

        JoinResult rejoined = await JoinAsync(groups, follower.MemberId, sessionTimeoutMs: 1000).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, follower.MemberId, follower.MemberId), (rejoined.Error, rejoined.MemberId, rejoined.LeaderId));
    }

    [Fact]
    public async Task AStaticMemberJoiningAgainReplacesTheOldOneWhichIsThenFenced()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        Task<JoinResult> StaticJoin(string memberId) =>
            groups.JoinAsync("g", memberId, "pod-1", "consumer", [("range", [0, 1])], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: true);
        JoinResult first = await StaticJoin(string.Empty).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, first.Error);
        SyncResult synced = await groups.SyncAsync("g", first.GenerationId, first.MemberId, new Dictionary<string, byte[]> { [first.MemberId] = [7] }, "pod-1").WaitAsync(Timeout);
        Assert.Equal([7], synced.Assignment);

        // A second process with the same group.instance.id (or the first one restarted) joins without a member id:
        // it gets a new id, and the old id is fenced everywhere, as Kafka does.
        JoinResult second = await StaticJoin(string.Empty).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, second.Error);
        Assert.NotEqual(first.MemberId, second.MemberId);
        Assert.Equal(ErrorCode.FencedInstanceId, groups.Heartbeat("g", first.GenerationId, first.MemberId, "pod-1"));
        Assert.Equal(ErrorCode.FencedInstanceId, groups.ValidateCommit("g", first.GenerationId, first.MemberId, "pod-1"));
        Assert.Equal(ErrorCode.FencedInstanceId, (await groups.SyncAsync("g", first.GenerationId, first.MemberId, new Dictionary<string, byte[]>(), "pod-1")).Error);
        Assert.Equal(ErrorCode.FencedInstanceId, (await StaticJoin(first.MemberId).WaitAsync(Timeout)).Error);
        Assert.Equal(ErrorCode.FencedInstanceId, groups.Leave("g", first.MemberId, "pod-1"));

        // The new member is the group's only member and keeps serving.
        SyncResult resynced = await groups.SyncAsync("g", second.GenerationId, second.MemberId, new Dictionary<string, byte[]> { [second.MemberId] = [8] }, "pod-1").WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, resynced.Error);
        Assert.Single(groups.Find("g")!.Snapshot());
        Assert.Equal(ErrorCode.None, groups.Heartbeat("g", second.GenerationId, second.MemberId, "pod-1"));
    }

    private static Task<JoinResult> StaticJoinAsync(GroupCoordinator groups, string instanceId, string memberId, byte[] subscription, bool canSkipAssignment = false, int rebalanceTimeoutMs = 10_000) =>
        groups.JoinAsync("g", memberId, instanceId, "consumer", [("range", subscription)], 10_000, rebalanceTimeoutMs, "client", "127.0.0.1", requireKnownMemberId: true, canSkipAssignment);

    /// <summary>Two static members, "pod-a" (the leader) and "pod-b", stable with assignments [1] and [2].</summary>
    private static async Task<(JoinResult A, JoinResult B)> StableStaticPairAsync(GroupCoordinator groups, int rebalanceTimeoutMs = 10_000)
    {
        JoinResult alone = await StaticJoinAsync(groups, "pod-a", string.Empty, [0, 1], rebalanceTimeoutMs: rebalanceTimeoutMs).WaitAsync(Timeout);
        await groups.SyncAsync("g", alone.GenerationId, alone.MemberId, new Dictionary<string, byte[]> { [alone.MemberId] = [1] }, "pod-a").WaitAsync(Timeout);
        Task<JoinResult> bJoin = StaticJoinAsync(groups, "pod-b", string.Empty, [0, 1], rebalanceTimeoutMs: rebalanceTimeoutMs);
        JoinResult a = await StaticJoinAsync(groups, "pod-a", alone.MemberId, [0, 1], rebalanceTimeoutMs: rebalanceTimeoutMs).WaitAsync(Timeout);
        JoinResult b = await bJoin.WaitAsync(Timeout);
        Assert.Equal(a.MemberId, a.LeaderId);
        Task<SyncResult> bSync = groups.SyncAsync("g", b.GenerationId, b.MemberId, new Dictionary<string, byte[]>(), "pod-b");
        await groups.SyncAsync("g", a.GenerationId, a.MemberId, new Dictionary<string, byte[]> { [a.MemberId] = [1], [b.MemberId] = [2] }, "pod-a").WaitAsync(Timeout);
        Assert.Equal([2], (await bSync.WaitAsync(Timeout)).Assignment);
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
        return (a, b);
    }

    [Fact]
    public async Task AStaticMemberRestartingIntoAStableGroupGetsItsAssignmentBackWithoutARebalance()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        (JoinResult a, JoinResult b) = await StableStaticPairAsync(groups);

        // pod-b restarts: no member id, and different subscription bytes (the Java client's carry its generation).
        JoinResult b2 = await StaticJoinAsync(groups, "pod-b", string.Empty, [0, 2]).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, b.GenerationId, a.MemberId), (b2.Error, b2.GenerationId, b2.LeaderId));
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
        Assert.Equal(ErrorCode.None, groups.Heartbeat("g", a.GenerationId, a.MemberId, "pod-a"));
        Assert.Equal([2], (await groups.SyncAsync("g", b2.GenerationId, b2.MemberId, new Dictionary<string, byte[]>(), "pod-b").WaitAsync(Timeout)).Assignment);

        // The leader restarts with a JoinGroup before v9: it is given its old id as the leader's, so it does not
        // assign again but syncs as a follower and gets its assignment back.
        JoinResult a2 = await StaticJoinAsync(groups, "pod-a", string.Empty, [0, 1]).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, a.GenerationId, a.MemberId, 0), (a2.Error, a2.GenerationId, a2.LeaderId, a2.Members.Count));
        Assert.NotEqual(a.MemberId, a2.MemberId);
        Assert.Equal([1], (await groups.SyncAsync("g", a2.GenerationId, a2.MemberId, new Dictionary<string, byte[]>(), "pod-a").WaitAsync(Timeout)).Assignment);

        // Again with v9+: it is the leader, sees the members, and is told to skip the assignment.
        JoinResult a3 = await StaticJoinAsync(groups, "pod-a", string.Empty, [0, 1], canSkipAssignment: true).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, a.GenerationId, a3.MemberId, 2, true), (a3.Error, a3.GenerationId, a3.LeaderId, a3.Members.Count, a3.SkipAssignment));
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
        Assert.Equal(ErrorCode.None, groups.Heartbeat("g", b2.GenerationId, b2.MemberId, "pod-b"));
    }

    [Fact]
    public async Task MembersJoiningDuringTheInitialDelayExtendItOnce()
    {
        const int Delay = 1500;
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: Delay);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Task<JoinResult> first = JoinAsync(groups, string.Empty);
        Task<JoinResult> second = JoinAsync(groups, string.Empty);
        JoinResult[] joined = await Task.WhenAll(first, second).WaitAsync(Timeout);

        // As Kafka's InitialDelayedJoin: the second member arrived during the first delay, so the group waited a second
        // delay before forming its first generation (which holds both). The bound only ever passes later on a slow machine.
        Assert.True(clock.ElapsedMilliseconds >= (2 * Delay) - 100, $"first generation formed after {clock.ElapsedMilliseconds} ms");
        Assert.All(joined, j => Assert.Equal((ErrorCode.None, 1), (j.Error, j.GenerationId)));
        Assert.Equal(2, joined.Max(j => j.Members.Count)); // the leader sees both
    }

    [Fact]
    public async Task ARefusedJoinDoesNotMakeTheGroup()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);

        // As Kafka: a member id the coordinator never gave out is refused without creating a group (which ListGroups would
        // show as Empty, and whose empty time would hold a forgotten group's offsets), also when the join has no protocols.
        JoinResult stale = await groups.JoinAsync("x", "stale-member", null, "consumer", [("range", [0])], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: true).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.UnknownMemberId, stale.Error);
        JoinResult staleWithoutProtocols = await groups.JoinAsync("x", "stale-member", null, "consumer", [], 10_000, 10_000, "client", "127.0.0.1", requireKnownMemberId: true).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.UnknownMemberId, staleWithoutProtocols.Error);
        Assert.Null(groups.Find("x"));
        Assert.DoesNotContain(groups.All, g => g.GroupId == "x");
    }

    [Fact]
    public async Task AStaticMemberRestartingWhileTheGroupAwaitsItsAssignmentStartsARebalance()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        JoinResult alone = await StaticJoinAsync(groups, "pod-a", string.Empty, [0, 1]).WaitAsync(Timeout);
        await groups.SyncAsync("g", alone.GenerationId, alone.MemberId, new Dictionary<string, byte[]> { [alone.MemberId] = [1] }, "pod-a").WaitAsync(Timeout);
        Task<JoinResult> bJoin = StaticJoinAsync(groups, "pod-b", string.Empty, [0, 1]);
        JoinResult a = await StaticJoinAsync(groups, "pod-a", alone.MemberId, [0, 1]).WaitAsync(Timeout);
        JoinResult b = await bJoin.WaitAsync(Timeout);
        Assert.Equal(GroupState.CompletingRebalance, groups.Find("g")!.State);

        // pod-b restarts (no member id, the same subscription bytes) before the leader has synced. The leader was given
        // the old id and will assign to it, so, as Kafka, the group rebalances instead of answering with this generation
        // (which left the new id with no partitions and the old id's unowned, the group stable).
        Task<JoinResult> b2Join = StaticJoinAsync(groups, "pod-b", string.Empty, [0, 1]);
        Assert.Equal(GroupState.PreparingRebalance, groups.Find("g")!.State);
        Assert.False(b2Join.IsCompleted);
        SyncResult stale = await groups.SyncAsync("g", a.GenerationId, a.MemberId, new Dictionary<string, byte[]> { [a.MemberId] = [1], [b.MemberId] = [2] }, "pod-a").WaitAsync(Timeout);
        Assert.Equal(ErrorCode.RebalanceInProgress, stale.Error);

        JoinResult a2 = await StaticJoinAsync(groups, "pod-a", a.MemberId, [0, 1]).WaitAsync(Timeout);
        JoinResult b2 = await b2Join.WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, ErrorCode.None), (a2.Error, b2.Error));
        Assert.True(a2.GenerationId > a.GenerationId);
        Assert.Equal(a2.GenerationId, b2.GenerationId);
        Assert.Contains(a2.Members, m => m.MemberId == b2.MemberId);
        Task<SyncResult> b2Sync = groups.SyncAsync("g", b2.GenerationId, b2.MemberId, new Dictionary<string, byte[]>(), "pod-b");
        await groups.SyncAsync("g", a2.GenerationId, a2.MemberId, new Dictionary<string, byte[]> { [a2.MemberId] = [1], [b2.MemberId] = [2] }, "pod-a").WaitAsync(Timeout);
        Assert.Equal([2], (await b2Sync.WaitAsync(Timeout)).Assignment);
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
    }

    [Fact]
    public async Task AStaticMemberAbsentDuringARebalanceKeepsItsPlaceAndIsAssignedPartitions()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0);
        (JoinResult a, JoinResult b) = await StableStaticPairAsync(groups, rebalanceTimeoutMs: 1000);

        // pod-b is down (restarting) when a new member joins: the rebalance completes at its timeout without it,
        // but, as in Kafka, it stays in the group and the leader assigns it partitions.
        Task<JoinResult> newcomer = groups.JoinAsync("g", string.Empty, null, "consumer", [("range", [0, 1])], 10_000, 1000, "client", "127.0.0.1", requireKnownMemberId: false);
        JoinResult a2 = await StaticJoinAsync(groups, "pod-a", a.MemberId, [0, 1], rebalanceTimeoutMs: 1000).WaitAsync(Timeout);
        JoinResult c = await newcomer.WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, a.MemberId), (a2.Error, a2.LeaderId));
        Assert.Equal(b.GenerationId + 1, a2.GenerationId);
        Assert.Contains(a2.Members, m => m.MemberId == b.MemberId);
        Task<SyncResult> cSync = groups.SyncAsync("g", c.GenerationId, c.MemberId, new Dictionary<string, byte[]>());
        await groups.SyncAsync("g", a2.GenerationId, a2.MemberId, new Dictionary<string, byte[]> { [a2.MemberId] = [1], [b.MemberId] = [2], [c.MemberId] = [3] }, "pod-a").WaitAsync(Timeout);
        Assert.Equal([3], (await cSync.WaitAsync(Timeout)).Assignment);

        // pod-b comes back within its session timeout and takes the assignment made for it, without a rebalance.
        JoinResult b2 = await StaticJoinAsync(groups, "pod-b", string.Empty, [0, 1], rebalanceTimeoutMs: 1000).WaitAsync(Timeout);
        Assert.Equal((ErrorCode.None, a2.GenerationId), (b2.Error, b2.GenerationId));
        Assert.Equal([2], (await groups.SyncAsync("g", b2.GenerationId, b2.MemberId, new Dictionary<string, byte[]>(), "pod-b").WaitAsync(Timeout)).Assignment);
        Assert.Equal(GroupState.Stable, groups.Find("g")!.State);
    }

    [Fact]
    public async Task AGroupLeftEmptyIsForgottenAfterItsRetentionAndItsIdCanBeJoinedAgain()
    {
        using var groups = new GroupCoordinator(initialRebalanceDelayMs: 0, emptyGroupRetention: TimeSpan.FromMilliseconds(300));
        JoinResult joined = await JoinAsync(groups, string.Empty).WaitAsync(Timeout);
        await groups.SyncAsync("g", joined.GenerationId, joined.MemberId, new Dictionary<string, byte[]> { [joined.MemberId] = [1] }).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, groups.Leave("g", joined.MemberId, null));

        // Kafka drops a group without members (its offsets, in the store, keep it listed); memory must not grow
        // with every console consumer's random group id.
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (groups.Find("g") is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Null(groups.Find("g"));
        JoinResult again = await JoinAsync(groups, string.Empty).WaitAsync(Timeout);
        Assert.Equal(ErrorCode.None, again.Error);
        Assert.NotNull(groups.Find("g"));
    }
}
