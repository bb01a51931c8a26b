using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>Which fetch session a full cache gives up for a new one, as Kafka's cache does.</summary>
public class FetchSessionCacheTests
{
    private const short Version = 12;

    private static FetchRequest Open(int partitions) => new()
    {
        ReplicaId = -1,
        SessionId = 0,
        SessionEpoch = 0,
        Topics = [new() { Topic = "t", Partitions = [.. Enumerable.Range(0, partitions).Select(p => new FetchRequest.FetchPartition { Partition = p, PartitionMaxBytes = 1024 })] }],
    };

    private static FetchRequest Next(FetchSession session) => new() { ReplicaId = -1, SessionId = session.Id, SessionEpoch = session.NextEpoch };

    /// <summary>A clock the test moves.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void AFullCacheKeepsActiveSessionsUnlessTheNewOneIsLargerAndTheOldOneNotYoung()
    {
        var clock = new ManualClock();
        var cache = new FetchSessionCache(maxSessions: 1, evictableAfter: TimeSpan.FromMinutes(2), time: clock);
        FetchSession two = cache.Resolve(Open(2), Version).Session!;

        // A smaller newcomer is served without a session; the active one stays.
        (FetchSession? none, _, ErrorCode error) = cache.Resolve(Open(1), Version);
        Assert.Null(none);
        Assert.Equal(ErrorCode.None, error);
        Assert.Equal((ErrorCode.None, true), (cache.Resolve(Next(two), Version) is var kept ? (kept.Error, kept.Incremental) : default));

        // So is a larger one while the session is younger than the eviction time, as in Kafka (else consumers opening
        // sessions could push each other out on every fetch).
        clock.Now += TimeSpan.FromSeconds(119);
        Assert.Equal((ErrorCode.None, true), (cache.Resolve(Next(two), Version) is var used ? (used.Error, used.Incremental) : default));
        Assert.Null(cache.Resolve(Open(3), Version).Session);
        Assert.Equal(ErrorCode.None, cache.Resolve(Next(two), Version).Error);

        // Once it is older, though in use, a larger one takes its place.
        clock.Now += TimeSpan.FromSeconds(1);
        Assert.Equal(ErrorCode.None, cache.Resolve(Next(two), Version).Error);
        FetchSession three = cache.Resolve(Open(3), Version).Session!;
        Assert.Equal(ErrorCode.FetchSessionIdNotFound, cache.Resolve(Next(two), Version).Error);
        Assert.Equal(ErrorCode.None, cache.Resolve(Next(three), Version).Error);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void ARequestOfTheOtherTopicIdModeIsRefusedAndLeavesTheSessionAlone()
    {
        // As Kafka's FetchManager: a session opened by topic id (v13+) takes no request naming topics (v12-), and back.
        var cache = new FetchSessionCache();
        var topicId = Guid.NewGuid();
        FetchSession byId = cache.Resolve(new FetchRequest { ReplicaId = -1, SessionEpoch = 0, Topics = [new() { TopicId = topicId, Partitions = [new() { Partition = 0, PartitionMaxBytes = 1024 }] }] }, 13).Session!;
        FetchRequest byName = new() { ReplicaId = -1, SessionId = byId.Id, SessionEpoch = 1, Topics = [new() { Topic = "t", Partitions = [new() { Partition = 0, PartitionMaxBytes = 1024 }] }] };
        Assert.Equal(ErrorCode.FetchSessionTopicIdError, cache.Resolve(byName, 12).Error);
        Assert.Single(byId.Partitions);
        Assert.Equal((ErrorCode.None, true), cache.Resolve(Next(byId), 13) is var next ? (next.Error, next.Incremental) : default);

        FetchSession named = cache.Resolve(Open(1), Version).Session!;
        Assert.Equal(ErrorCode.FetchSessionTopicIdError, cache.Resolve(Next(named), 13).Error);
        Assert.Equal(ErrorCode.None, cache.Resolve(Next(named), Version).Error);
    }

    [Fact]
    public void AnIdleSessionGivesWayToAnyNewOne()
    {
        var cache = new FetchSessionCache(maxSessions: 1, evictableAfter: TimeSpan.Zero);
        FetchSession three = cache.Resolve(Open(3), Version).Session!;
        FetchSession? one = cache.Resolve(Open(1), Version).Session;
        Assert.NotNull(one);
        Assert.Equal(ErrorCode.FetchSessionIdNotFound, cache.Resolve(Next(three), Version).Error);
    }

    [Fact]
    public async Task SessionIdsGoRoundPastTheLargestInt()
    {
        var cache = new FetchSessionCache(firstSessionId: int.MaxValue - 1);
        int[] ids = await Task.Run(() => Enumerable.Range(0, 4).Select(_ => cache.Resolve(Open(1), Version).Session!.Id).ToArray()).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([int.MaxValue - 1, int.MaxValue, 1, 2], ids);
    }

    [Fact]
    public void AFullFetchNamingAnUnknownSessionIsServedAsKafkaDoes()
    {
        var cache = new FetchSessionCache();
        FetchRequest reopen = Open(2);
        reopen.SessionId = 12345;
        (FetchSession? opened, bool incremental, ErrorCode error) = cache.Resolve(reopen, Version);
        Assert.Equal((ErrorCode.None, false), (error, incremental));
        Assert.NotNull(opened);

        FetchRequest close = Open(2);
        close.SessionId = 54321;
        close.SessionEpoch = -1;
        Assert.Equal((null, false, ErrorCode.None), cache.Resolve(close, Version));
        Assert.Equal(ErrorCode.FetchSessionIdNotFound, cache.Resolve(new FetchRequest { ReplicaId = -1, SessionId = 54321, SessionEpoch = 3 }, Version).Error);
    }
}
