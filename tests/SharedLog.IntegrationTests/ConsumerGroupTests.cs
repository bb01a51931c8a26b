using System.Collections.Concurrent;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.DependencyInjection;
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.IntegrationTests;

/// <summary>Classic consumer groups driven by Confluent.Kafka consumers against the real broker.</summary>
public class ConsumerGroupTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task CreateTopicAsync(string bootstrap, string topic, int partitions)
    {
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = 1 }]);
    }

    private static async Task ProduceAsync(string bootstrap, string topic, int partitions, int perPartition, string prefix)
    {
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, LingerMs = 5 }).Build();
        for (int p = 0; p < partitions; p++)
        {
            for (int i = 0; i < perPartition; i++)
            {
                producer.Produce(new TopicPartition(topic, p), new Message<string, string> { Key = $"{p}", Value = $"{prefix}-{p}-{i}" });
            }
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        await Task.CompletedTask;
    }

    private static IConsumer<string, string> Member(string bootstrap, string group, ConcurrentDictionary<string, int> seen, ConcurrentDictionary<string, List<TopicPartition>> assignments, string name) =>
        new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = group,
            ClientId = name,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 500,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.Range,
        })
        .SetPartitionsAssignedHandler((_, parts) => assignments[name] = parts)
        .SetPartitionsRevokedHandler((_, _) => assignments[name] = [])
        .Build();

    [Fact]
    public async Task ThreeMembersShareSixPartitionsAndRebalanceAsMembersComeAndGo()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        const string topic = "grouped";
        await CreateTopicAsync(broker.BootstrapServers, topic, 6);
        await ProduceAsync(broker.BootstrapServers, topic, 6, 10, "first");

        var seen = new ConcurrentDictionary<string, int>();
        var assignments = new ConcurrentDictionary<string, List<TopicPartition>>();
        var members = new List<IConsumer<string, string>>();
        try
        {
            for (int m = 0; m < 3; m++)
            {
                IConsumer<string, string> consumer = Member(broker.BootstrapServers, "g3", seen, assignments, $"member-{m}");
                consumer.Subscribe(topic);
                members.Add(consumer);
            }

            // Poll all members until every record is seen and the six partitions are split three ways.
            DateTime deadline = DateTime.UtcNow + Timeout;
            while ((seen.Count < 60 || assignments.Values.Count(a => a.Count == 2) < 3) && DateTime.UtcNow < deadline)
            {
                foreach (IConsumer<string, string> consumer in members)
                {
                    if (consumer.Consume(TimeSpan.FromMilliseconds(50)) is { Message: { } message } result)
                    {
                        seen.AddOrUpdate(message.Value, 1, (_, n) => n + 1);
                        consumer.Commit(result);
                    }
                }
            }

            Assert.Equal(60, seen.Count);
            Assert.Equal(3, assignments.Values.Count(a => a.Count == 2));
            Assert.Equal(6, assignments.Values.SelectMany(a => a).Select(tp => tp.Partition.Value).Distinct().Count());

            // One member leaves: the other two take over all six partitions.
            members[2].Close();
            members[2].Dispose();
            members.RemoveAt(2);
            assignments.TryRemove("member-2", out _);
            deadline = DateTime.UtcNow + Timeout;
            while (assignments.Values.Sum(a => a.Count) != 6 && DateTime.UtcNow < deadline)
            {
                foreach (IConsumer<string, string> consumer in members)
                {
                    consumer.Consume(TimeSpan.FromMilliseconds(50));
                }
            }

            Assert.Equal(6, assignments.Values.Sum(a => a.Count));
            Assert.All(assignments.Values, a => Assert.Equal(3, a.Count));

            // New records after the rebalance reach the remaining members, from the committed positions.
            await ProduceAsync(broker.BootstrapServers, topic, 6, 5, "second");
            deadline = DateTime.UtcNow + Timeout;
            while (seen.Count < 90 && DateTime.UtcNow < deadline)
            {
                foreach (IConsumer<string, string> consumer in members)
                {
                    if (consumer.Consume(TimeSpan.FromMilliseconds(50)) is { Message: { } message })
                    {
                        seen.AddOrUpdate(message.Value, 1, (_, n) => n + 1);
                    }
                }
            }

            Assert.Equal(90, seen.Count);
        }
        finally
        {
            foreach (IConsumer<string, string> consumer in members)
            {
                consumer.Close();
                consumer.Dispose();
            }
        }
    }

    [Fact]
    public async Task CommittedOffsetsAreFetchedBackAndSurviveRestart()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-offsets-" + Guid.NewGuid().ToString("N"));
        BrokerFixture first = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
        try
        {
            await CreateTopicAsync(first.BootstrapServers, "committed", 2);
            using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = first.BootstrapServers, GroupId = "offsets" }).Build();
            consumer.Commit([new TopicPartitionOffset("committed", 0, 7), new TopicPartitionOffset("committed", 1, 3)]);
            List<TopicPartitionOffset> fetched = consumer.Committed([new TopicPartition("committed", 0), new TopicPartition("committed", 1)], TimeSpan.FromSeconds(20));
            Assert.Equal([7L, 3L], fetched.Select(f => f.Offset.Value));
            consumer.Close();
        }
        finally
        {
            await first.DisposeAsync();
        }

        await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir);
        using IConsumer<string, string> again = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = second.BootstrapServers, GroupId = "offsets" }).Build();
        List<TopicPartitionOffset> after = again.Committed([new TopicPartition("committed", 0), new TopicPartition("committed", 1)], TimeSpan.FromSeconds(20));
        Assert.Equal([7L, 3L], after.Select(f => f.Offset.Value));
    }

    [Fact]
    public async Task ASecondConsumerWithTheSameGroupInstanceIdFencesTheFirst()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await CreateTopicAsync(broker.BootstrapServers, "static", 2);
        var firstErrors = new ConcurrentQueue<Error>();
        ConsumerConfig Config() => new()
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "static-group",
            GroupInstanceId = "pod-1",
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 300,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        };
        var firstAssigned = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> first = new ConsumerBuilder<Ignore, Ignore>(Config())
            .SetErrorHandler((_, e) => firstErrors.Enqueue(e))
            .SetPartitionsAssignedHandler((_, parts) => firstAssigned.Enqueue(parts.Count))
            .Build();
        first.Subscribe("static");
        ConsumeUntilAssigned(first, firstAssigned);

        // A second process with the same group.instance.id (a copied config) joins: the broker fences the first,
        // which librdkafka reports as a fatal FENCED_INSTANCE_ID, instead of both consuming the same partitions.
        var secondAssigned = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> second = new ConsumerBuilder<Ignore, Ignore>(Config())
            .SetPartitionsAssignedHandler((_, parts) => secondAssigned.Enqueue(parts.Count))
            .Build();
        second.Subscribe("static");
        DateTime deadline = DateTime.UtcNow + Timeout;
        while ((secondAssigned.IsEmpty || !firstErrors.Any(e => e.Code == ErrorCode.FencedInstanceId)) && DateTime.UtcNow < deadline)
        {
            second.Consume(TimeSpan.FromMilliseconds(50));
            try
            {
                first.Consume(TimeSpan.FromMilliseconds(50));
            }
            catch (ConsumeException e) when (e.Error.Code == ErrorCode.FencedInstanceId)
            {
                firstErrors.Enqueue(e.Error);
            }
        }

        Assert.Contains(firstErrors, e => e.Code == ErrorCode.FencedInstanceId);
        Assert.Contains(2, secondAssigned);
    }

    [Fact]
    public async Task AStaticLeaderRestartingWithinItsSessionTimeoutDoesNotRebalanceTheGroup()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await CreateTopicAsync(broker.BootstrapServers, "static-restart", 4);
        ConsumerConfig Config(string instance) => new()
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "static-restart-group",
            GroupInstanceId = instance,
            SessionTimeoutMs = 30_000,
            HeartbeatIntervalMs = 300,
        };
        var leaderAssigned = new ConcurrentQueue<int>();
        IConsumer<Ignore, Ignore> leader = new ConsumerBuilder<Ignore, Ignore>(Config("pod-1"))
            .SetPartitionsAssignedHandler((_, parts) => leaderAssigned.Enqueue(parts.Count))
            .Build();
        leader.Subscribe("static-restart");
        ConsumeUntilAssigned(leader, leaderAssigned);

        // A second member joins: one rebalance, after which each member owns two partitions.
        var followerAssigned = new ConcurrentQueue<int>();
        var followerRevoked = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> follower = new ConsumerBuilder<Ignore, Ignore>(Config("pod-2"))
            .SetPartitionsAssignedHandler((_, parts) => followerAssigned.Enqueue(parts.Count))
            .SetPartitionsRevokedHandler((_, parts) => followerRevoked.Enqueue(parts.Count))
            .Build();
        follower.Subscribe("static-restart");
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (!(followerAssigned.Contains(2) && leaderAssigned.Contains(2)) && DateTime.UtcNow < deadline)
        {
            leader.Consume(TimeSpan.FromMilliseconds(50));
            follower.Consume(TimeSpan.FromMilliseconds(50));
        }

        Assert.Contains(2, followerAssigned);
        Assert.Contains(2, leaderAssigned);

        // The leader's process restarts: a static member sends no LeaveGroup when it closes (KIP-345), and the new
        // process joins with the same group.instance.id. It gets its two partitions back and the follower keeps its own.
        leader.Close();
        leader.Dispose();
        var restartedAssigned = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> restarted = new ConsumerBuilder<Ignore, Ignore>(Config("pod-1"))
            .SetPartitionsAssignedHandler((_, parts) => restartedAssigned.Enqueue(parts.Count))
            .Build();
        restarted.Subscribe("static-restart");
        deadline = DateTime.UtcNow + Timeout;
        while (restartedAssigned.IsEmpty && DateTime.UtcNow < deadline)
        {
            restarted.Consume(TimeSpan.FromMilliseconds(50));
            follower.Consume(TimeSpan.FromMilliseconds(50));
        }

        Assert.Equal([2], restartedAssigned);

        // Polled for a few more heartbeat intervals: had the join started a rebalance, the follower would be told to
        // rejoin by its next heartbeat and would see its partitions revoked.
        for (int i = 0; i < 20; i++)
        {
            restarted.Consume(TimeSpan.FromMilliseconds(50));
            follower.Consume(TimeSpan.FromMilliseconds(50));
        }

        Assert.Empty(followerRevoked);
        Assert.Equal([2], followerAssigned.Where(count => count > 0));
    }

    [Fact]
    public async Task OffsetsOfTopicsNoMemberSubscribesToCanBeDeletedWhileTheGroupIsActive()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await CreateTopicAsync(broker.BootstrapServers, "current", 1);
        await CreateTopicAsync(broker.BootstrapServers, "retired", 1);
        var assigned = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> member = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "kip496", EnableAutoCommit = false })
            .SetPartitionsAssignedHandler((_, parts) => assigned.Enqueue(parts.Count))
            .Build();
        member.Subscribe("current");
        ConsumeUntilAssigned(member, assigned);
        member.Commit([new TopicPartitionOffset("current", 0, 3), new TopicPartitionOffset("retired", 0, 5)]);

        // KIP-496 as in Kafka: a live consumer group's offsets of a topic no member subscribes to can go; those of a
        // subscribed topic stay, with GROUP_SUBSCRIBED_TO_TOPIC.
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.DeleteConsumerGroupOffsetsAsync("kip496", [new TopicPartition("retired", 0)]);
        var refused = await Assert.ThrowsAsync<DeleteConsumerGroupOffsetsException>(() => admin.DeleteConsumerGroupOffsetsAsync("kip496", [new TopicPartition("current", 0)]));
        Assert.Equal(ErrorCode.GroupSubscribedToTopic, refused.Result.Partitions.Single().Error.Code);

        List<TopicPartitionOffset> committed = member.Committed([new TopicPartition("current", 0), new TopicPartition("retired", 0)], Timeout);
        Assert.Equal(3, committed.Single(c => c.Topic == "current").Offset.Value);
        Assert.Equal(Offset.Unset, committed.Single(c => c.Topic == "retired").Offset);
    }

    [Fact]
    public async Task CommittedOffsetsExpireAfterTheRetentionAsInKafka()
    {
        // The periodic check is left an hour apart; the test runs expiry rounds itself at chosen times.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true,
            "--Broker:OffsetsRetentionMinutes", "1", "--Broker:OffsetsRetentionCheckIntervalMs", "3600000");
        await CreateTopicAsync(broker.BootstrapServers, "kept", 1);
        await CreateTopicAsync(broker.BootstrapServers, "retired", 1);
        GroupOffsetExpiry expiry = broker.Host.Services.GetRequiredService<GroupOffsetExpiry>();
        IMetadataStore metadata = broker.Host.Services.GetRequiredService<IMetadataStore>();
        ConsumerConfig Config(string group) => new() { BootstrapServers = broker.BootstrapServers, GroupId = group, EnableAutoCommit = false };

        // Groups that only commit (no member ever joins): one commit now; one ten days old next to one now, each
        // expiring by its own commit time; and one committed over the wire (OffsetCommit v2) with its own retention.
        using (IConsumer<Ignore, Ignore> standalone = new ConsumerBuilder<Ignore, Ignore>(Config("standalone")).Build())
        {
            standalone.Commit([new TopicPartitionOffset("kept", 0, 5)]);
        }

        DateTimeOffset tenDaysAgo = DateTimeOffset.UtcNow.AddDays(-10);
        await metadata.CommitGroupOffsetsAsync("simple-mixed", [new GroupOffset("kept", 0, 6, -1, null, tenDaysAgo), new GroupOffset("retired", 0, 1, -1, null, DateTimeOffset.UtcNow)]);
        using (RawKafkaClient raw = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await raw.SendAsync(new OffsetCommitRequest { GroupId = "own-retention", GenerationIdOrMemberEpoch = -1, RetentionTimeMs = 10_000, Topics = [new() { Name = "kept", Partitions = [new() { PartitionIndex = 0, CommittedOffset = 8 }] }] }, 2, 1);
            (_, byte[] body) = await raw.ReceiveAsync(0);
            Assert.Equal(0, new OffsetCommitResponse().ReadFrom(body, 2).Topics.Single().Partitions.Single().ErrorCode);
        }

        // A consumer group that had members when the broker stopped (its state saved, its commits ten days old): its
        // empty time counts from this broker's start.
        await metadata.CommitGroupOffsetsAsync("old-before-restart", [new GroupOffset("kept", 0, 4, -1, null, tenDaysAgo)]);
        await metadata.SaveGroupStateAsync(new SavedGroupState("old-before-restart", "consumer", null));

        // A group kept by a broker from before group states were saved (the upgrade leaves it an empty protocol type):
        // nothing of it goes before this broker has run for the retention, then each offset by its own commit time.
        await metadata.CommitGroupOffsetsAsync("legacy", [new GroupOffset("kept", 0, 9, -1, null, tenDaysAgo), new GroupOffset("retired", 0, 9, -1, null, DateTimeOffset.UtcNow.AddSeconds(90))]);
        await metadata.SaveGroupStateAsync(new SavedGroupState("legacy", string.Empty, null));

        // A group whose member commits and leaves, and one whose only commit is old but whose member just left (a
        // consumer on a quiet partition need not commit while it is a member).
        await metadata.CommitGroupOffsetsAsync("quiet", [new GroupOffset("kept", 0, 2, -1, null, tenDaysAgo)]);
        foreach (string group in new[] { "left", "quiet" })
        {
            var assigned = new ConcurrentQueue<int>();
            using IConsumer<Ignore, Ignore> member = new ConsumerBuilder<Ignore, Ignore>(Config(group)).SetPartitionsAssignedHandler((_, parts) => assigned.Enqueue(parts.Count)).Build();
            member.Subscribe("kept");
            ConsumeUntilAssigned(member, assigned);
            if (group == "left")
            {
                member.Commit([new TopicPartitionOffset("kept", 0, 3)]);
            }

            member.Close();
        }

        // An active member that also holds an offset of a topic it no longer subscribes to.
        var activeAssigned = new ConcurrentQueue<int>();
        using IConsumer<Ignore, Ignore> active = new ConsumerBuilder<Ignore, Ignore>(Config("active")).SetPartitionsAssignedHandler((_, parts) => activeAssigned.Enqueue(parts.Count)).Build();
        active.Subscribe("kept");
        ConsumeUntilAssigned(active, activeAssigned);
        active.Commit([new TopicPartitionOffset("kept", 0, 7), new TopicPartitionOffset("retired", 0, 2)]);

        long? Committed(string group, string topic = "kept")
        {
            using IConsumer<Ignore, Ignore> reader = new ConsumerBuilder<Ignore, Ignore>(Config(group)).Build();
            Offset offset = reader.Committed([new TopicPartition(topic, 0)], Timeout).Single().Offset;
            return offset == Offset.Unset ? null : offset.Value;
        }

        // Within the retention only the offsets past it by their own clock go: the ten-day-old commit of a group that
        // only commits, and the one whose own retention (10 s) is over. Groups that had members count from when they
        // emptied (or from the start, for the one that had members before it), whatever their commits' age.
        Assert.Equal(2, await expiry.RunOnceAsync(DateTimeOffset.UtcNow.AddSeconds(30), CancellationToken.None));
        Assert.Equal(
            (5L, null, 1L, null, 4L, 3L, 2L, 7L, 2L),
            (Committed("standalone"), Committed("simple-mixed"), Committed("simple-mixed", "retired"), Committed("own-retention"), Committed("old-before-restart"), Committed("left"), Committed("quiet"), Committed("active"), Committed("active", "retired")));

        // The groups keep their protocol type after their members left, as Kafka's group metadata does; a group that
        // only commits has none (admin clients list it as a simple consumer group).
        using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            Dictionary<string, bool> simple = (await admin.ListConsumerGroupsAsync()).Valid.ToDictionary(g => g.GroupId, g => g.IsSimpleConsumerGroup);
            Assert.Equal((false, false, true), (simple["left"], simple["old-before-restart"], simple["standalone"]));
        }

        // Past it: groups without members lose all their offsets; the active group only the unsubscribed topic's.
        Assert.Equal(9L, Committed("legacy"));
        DateTimeOffset later = DateTimeOffset.UtcNow.AddMinutes(2);
        Assert.Equal(7, await expiry.RunOnceAsync(later, CancellationToken.None));
        Assert.Equal(
            (null, null, null, null, null, 7L, null, null, 9L),
            (Committed("standalone"), Committed("simple-mixed", "retired"), Committed("old-before-restart"), Committed("left"), Committed("quiet"), Committed("active"), Committed("active", "retired"), Committed("legacy"), Committed("legacy", "retired")));
        Assert.Equal(["active", "legacy"], (await metadata.ListGroupStatesAsync()).Select(g => g.GroupId));

        // A group whose offsets all expired is gone, as Kafka's Dead group: a new commit under its id is a new group's,
        // not one empty since long ago, and stays for the retention from that commit.
        await metadata.CommitGroupOffsetsAsync("left", [new GroupOffset("kept", 0, 11, -1, null, later)]);
        Assert.Equal(0, await expiry.RunOnceAsync(later.AddSeconds(10), CancellationToken.None));
        Assert.Equal(11L, Committed("left"));
    }

    /// <summary>Polls until the consumer's assignment callback has run, for at most the test timeout.</summary>
    private static void ConsumeUntilAssigned<TKey, TValue>(IConsumer<TKey, TValue> consumer, ConcurrentQueue<int> assigned)
    {
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (assigned.IsEmpty && DateTime.UtcNow < deadline)
        {
            consumer.Consume(TimeSpan.FromMilliseconds(100));
        }

        Assert.False(assigned.IsEmpty, "the consumer was never assigned partitions");
    }
}
