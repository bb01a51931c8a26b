using Confluent.Kafka;

namespace SharedLog.IntegrationTests;

/// <summary>Short Confluent.Kafka (librdkafka) exchanges the tests share.</summary>
internal static class KafkaClients
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Up to <paramref name="expected"/> records from one partition, from an offset, as "offset:key=value".</summary>
    public static List<string> ConsumeFrom(string bootstrap, string topic, int partition, long offset, int expected)
    {
        var config = new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "assigned-only", EnableAutoCommit = false };
        var values = new List<string>();
        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset(topic, partition, offset));
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (values.Count < expected && DateTime.UtcNow < deadline)
        {
            ConsumeResult<string, string>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result?.Message is { } m)
            {
                values.Add($"{result.Offset.Value}:{m.Key}={m.Value}");
            }
        }

        return values;
    }

    /// <summary>
    /// Values read by a consumer of <paramref name="group"/> subscribed to <paramref name="topic"/> (from the earliest offset
    /// when the group has none), until <paramref name="expected"/> or the deadline; errors that librdkafka recovers from are
    /// waited out.
    /// </summary>
    public static List<string> ConsumeInGroup(string bootstrap, string group, string topic, int expected)
    {
        var config = new ConsumerConfig { BootstrapServers = bootstrap, GroupId = group, AutoOffsetReset = AutoOffsetReset.Earliest, EnableAutoCommit = false };
        var values = new List<string>();
        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (values.Count < expected && DateTime.UtcNow < deadline)
        {
            try
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message is { } m)
                {
                    values.Add(m.Value);
                }
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                // A join refused while the group still has other members (e.g. with another protocol) is tried again.
            }
        }

        consumer.Close();
        return values;
    }

    /// <summary>Produces <paramref name="count"/> keyed records with acks=all to partition 0 and reads them back: the broker serves a real client.</summary>
    public static async Task AssertRoundTripAsync(string bootstrap, string topic, int count = 10)
    {
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, Acks = Acks.All, MessageTimeoutMs = 15000 }).Build();
        long first = -1;
        var sent = new List<string>();
        for (int i = 0; i < count; i++)
        {
            DeliveryResult<string, string> delivered = await producer.ProduceAsync(new TopicPartition(topic, 0), new Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
            first = first < 0 ? delivered.Offset.Value : first;
            sent.Add($"{delivered.Offset.Value}:k{i}=v{i}");
        }

        Assert.Equal(sent, ConsumeFrom(bootstrap, topic, 0, first, count));
    }
}
