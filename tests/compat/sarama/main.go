// Sarama (the Go client, Debian's golang-github-shopify-sarama-dev) against SharedLog: admin
// create/describe/grow a topic, a synchronous acks=all producer per compression codec (two of them
// idempotent), a consumer group that reads everything back and commits, the committed offsets through
// the admin API, then a second member joining and leaving a group (two rebalances).
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

	// One synchronous acks=all producer per codec, two of them idempotent; every record's partition and offset are kept.
	var sent []produced
	last := map[int32]int64{}
	codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	for n, codec := range codecs {
		c := config()
		c.Producer.RequiredAcks = sarama.WaitForAll
		if n%2 == 1 { // gzip and lz4 through an idempotent producer (InitProducerId, sequence numbers)
			c.Producer.Idempotent = true
			c.Net.MaxOpenRequests = 1
		}
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
	rebalance(brokers, topic, 4)
	if err := admin.Close(); err != nil {
		fail("close admin: %v", err)
	}
	fmt.Printf("sarama ok: %d records in %d codecs over %d partitions, committed; a second member joined and left\n", len(sent), len(codecs), len(byPartition))
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

// rebalance runs one member of a fresh group, adds a second and removes it again: after each change the
// members' claims must cover every partition exactly once.
func rebalance(brokers []string, topic string, partitions int) {
	group := topic + "-pair"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(name string) (sarama.ConsumerGroup, *claims) {
		c := config()
		c.ClientID = name
		consumer, err := sarama.NewConsumerGroup(brokers, group, c)
		if err != nil {
			fail("%s: %v", name, err)
		}
		held := &claims{}
		go func() {
			for ctx.Err() == nil && !held.closed() {
				if err := consumer.Consume(ctx, []string{topic}, held); err != nil && ctx.Err() == nil && !held.closed() {
					fmt.Fprintf(os.Stderr, "sarama: %s consume: %v\n", name, err)
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
		return consumer, held
	}
	waitFor := func(what string, ok func() bool) {
		for !ok() {
			if ctx.Err() != nil {
				fail("rebalance: %s did not happen within 60 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	first, firstClaims := start("member-a")
	waitFor("the first member holding every partition", func() bool { return firstClaims.count() == partitions })
	second, secondClaims := start("member-b")
	waitFor("the partitions split between two members", func() bool {
		a, b := firstClaims.held(), secondClaims.held()
		if len(a) == 0 || len(b) == 0 || len(a)+len(b) != partitions {
			return false
		}
		for p := range a {
			if b[p] {
				return false
			}
		}
		return true
	})
	secondClaims.close()
	if err := second.Close(); err != nil { // LeaveGroup
		fail("close member-b: %v", err)
	}
	waitFor("the first member holding every partition again", func() bool { return firstClaims.count() == partitions })
	firstClaims.close()
	if err := first.Close(); err != nil {
		fail("close member-a: %v", err)
	}
}

// claims tracks the partitions a member holds in its current session.
type claims struct {
	mu      sync.Mutex
	current map[int32]bool
	done    bool
}

func (c *claims) Setup(session sarama.ConsumerGroupSession) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = map[int32]bool{}
	for _, partitions := range session.Claims() {
		for _, p := range partitions {
			c.current[p] = true
		}
	}
	return nil
}

func (c *claims) Cleanup(sarama.ConsumerGroupSession) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = nil
	return nil
}

func (c *claims) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for range claim.Messages() {
	}
	return nil
}

func (c *claims) held() map[int32]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	copied := map[int32]bool{}
	for p := range c.current {
		copied[p] = true
	}
	return copied
}

func (c *claims) count() int { return len(c.held()) }

func (c *claims) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
}

func (c *claims) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}
