// Sarama (the Go client, Debian's golang-github-shopify-sarama-dev) against SharedLog: admin
// create/describe/grow a topic, a synchronous acks=all producer per compression codec, a consumer
// group that reads everything back and commits, then the committed offsets through the admin API.
// Exits non-zero on any difference. Usage: sarama BOOTSTRAP TOPIC
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

type produced struct {
	partition int32
	offset    int64
	key       string
	value     string
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "sarama: "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sharedlog-sarama-compat"
	c.Version = sarama.V2_2_0_0 // the newest protocol this sarama speaks; zstd needs 2.1 or later
	c.Net.DialTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	return c
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: sarama BOOTSTRAP TOPIC")
	}
	brokers := []string{os.Args[1]}
	topic := os.Args[2]

	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("admin: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		fail("create topic: %v", err)
	}
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	if terr, ok := err.(*sarama.TopicError); !ok || terr.Err != sarama.ErrTopicAlreadyExists {
		fail("creating the topic again: want TOPIC_ALREADY_EXISTS, got %v", err)
	}
	if err := admin.CreatePartitions(topic, 4, nil, false); err != nil {
		fail("create partitions: %v", err)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(meta) != 1 || meta[0].Err != sarama.ErrNoError || len(meta[0].Partitions) != 4 {
		fail("describe topics: %v %+v", err, meta)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		fail("describe config: %v", err)
	}
	found := false
	for _, e := range entries {
		if e.Name == "cleanup.policy" && e.Value == "delete" {
			found = true
		}
	}
	if !found {
		fail("describe config: no cleanup.policy=delete among %d entries", len(entries))
	}

	// One synchronous acks=all producer per codec; every record's partition and offset are kept.
	var sent []produced
	last := map[int32]int64{}
	codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	for _, codec := range codecs {
		c := config()
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Producer.Return.Successes = true
		c.Producer.Compression = codec
		c.Producer.Partitioner = sarama.NewHashPartitioner
		producer, err := sarama.NewSyncProducer(brokers, c)
		if err != nil {
			fail("producer %v: %v", codec, err)
		}
		var batch []*sarama.ProducerMessage
		for i := 0; i < 40; i++ {
			batch = append(batch, &sarama.ProducerMessage{
				Topic: topic,
				Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i%7)),
				Value: sarama.StringEncoder(fmt.Sprintf("%v-record-%d", codec, i)),
			})
		}
		if err := producer.SendMessages(batch); err != nil {
			fail("send %v: %v", codec, err)
		}
		for _, m := range batch {
			if previous, ok := last[m.Partition]; ok && m.Offset <= previous {
				fail("offsets out of order on partition %d: %d after %d", m.Partition, m.Offset, previous)
			}
			last[m.Partition] = m.Offset
			key, _ := m.Key.Encode()
			value, _ := m.Value.Encode()
			sent = append(sent, produced{m.Partition, m.Offset, string(key), string(value)})
		}
		if err := producer.Close(); err != nil {
			fail("close producer %v: %v", codec, err)
		}
	}

	// A consumer group reads everything back from the oldest offset and marks each message consumed.
	group := topic + "-group"
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumerGroup(brokers, group, c)
	if err != nil {
		fail("consumer group: %v", err)
	}
	handler := &collector{want: len(sent), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		for err := range consumer.Errors() {
			fmt.Fprintf(os.Stderr, "sarama: consumer error: %v\n", err)
		}
	}()
	go func() {
		for ctx.Err() == nil {
			if err := consumer.Consume(ctx, []string{topic}, handler); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "sarama: consume: %v\n", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	select {
	case <-handler.done:
	case <-ctx.Done():
		fail("consumed %d of %d records within 60 s", handler.count(), len(sent))
	}
	cancel()
	if err := consumer.Close(); err != nil { // commits what was marked
		fail("close consumer group: %v", err)
	}

	byPartition := map[int32][]produced{}
	for _, p := range sent {
		byPartition[p.partition] = append(byPartition[p.partition], p)
	}
	got := handler.records()
	for partition, want := range byPartition {
		have := got[partition]
		if len(have) != len(want) {
			fail("partition %d: consumed %d records, produced %d", partition, len(have), len(want))
		}
		for i := range want {
			if have[i] != want[i] {
				fail("partition %d record %d: consumed %+v, produced %+v", partition, i, have[i], want[i])
			}
		}
	}

	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
	if err != nil {
		fail("list group offsets: %v", err)
	}
	for partition := int32(0); partition < 4; partition++ {
		block := offsets.GetBlock(topic, partition)
		want := int64(-1)
		if offset, ok := last[partition]; ok {
			want = offset + 1
		}
		if block == nil || block.Err != sarama.ErrNoError || block.Offset != want {
			fail("committed offset of partition %d: %+v, want %d", partition, block, want)
		}
	}
	groups, err := admin.ListConsumerGroups()
	if _, ok := groups[group]; err != nil || !ok {
		fail("list groups: %v %v", err, groups)
	}
	if err := admin.Close(); err != nil {
		fail("close admin: %v", err)
	}
	fmt.Printf("sarama ok: %d records in %d codecs over %d partitions, committed\n", len(sent), len(codecs), len(byPartition))
}

type collector struct {
	mu   sync.Mutex
	got  map[int32][]produced
	want int
	n    int
	done chan struct{}
}

func (c *collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (c *collector) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.mu.Lock()
		if c.got == nil {
			c.got = map[int32][]produced{}
		}
		c.got[m.Partition] = append(c.got[m.Partition], produced{m.Partition, m.Offset, string(m.Key), string(m.Value)})
		c.n++
		if c.n == c.want {
			close(c.done)
		}
		c.mu.Unlock()
		session.MarkMessage(m, "")
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *collector) records() map[int32][]produced {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}
