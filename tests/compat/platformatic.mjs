// @platformatic/kafka (a pure JavaScript client that speaks the newest protocol versions) against a
// SharedLog broker: admin (create, grow, configure and describe a topic), an idempotent producer, a
// consumer group with commits (content, headers and order checked), then the admin calls on offsets,
// records, log dirs, broker loggers and groups. Exits non-zero on any difference. Usage: node platformatic.mjs BOOTSTRAP TOPIC

// The client asks for Node.js 22 only for Promise.withResolvers; Node.js 20, which the test machines have, lacks it.
Promise.withResolvers ??= function withResolvers() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
};

const { Admin, Producer, Consumer, stringSerializers, stringDeserializers, ConfigResourceTypes, IncrementalAlterConfigOperationTypes, ListOffsetTimestamps } = await import('@platformatic/kafka');

const [bootstrap, topic] = process.argv.slice(2);
const bootstrapBrokers = [bootstrap];
const group = `${topic}-group`;
const json = (value) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
function check(ok, what, value) {
  if (!ok) {
    console.error(`platformatic: ${what}: ${json(value)}`);
    process.exit(1);
  }
}

const admin = new Admin({ clientId: 'platformatic-admin', bootstrapBrokers });
await admin.createTopics({ topics: [topic], partitions: 2, replicas: 1 });
await admin.createPartitions({ topics: [{ name: topic, count: 3 }] });
const metadata = await admin.metadata({ topics: [topic] });
check(metadata.topics.get(topic).partitionsCount === 3, 'partitions after createPartitions', [...metadata.topics]);
await admin.incrementalAlterConfigs({
  resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'retention.ms', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '86400000' }] }],
});
const [topicConfigs] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['retention.ms'] }] });
check(topicConfigs.configs.length === 1 && topicConfigs.configs[0].value === '86400000', 'retention.ms after incrementalAlterConfigs', topicConfigs);

const producer = new Producer({ clientId: 'platformatic-producer', bootstrapBrokers, serializers: stringSerializers, idempotent: true });
const sent = new Map();
for (let i = 0; i < 60; i++) {
  const result = await producer.send({ messages: [{ topic, key: `key-${i % 5}`, value: `value-${i}`, headers: { n: String(i) } }] });
  const { partition, offset } = result.offsets[0];
  if (!sent.has(partition)) sent.set(partition, []);
  sent.get(partition).push({ offset, key: `key-${i % 5}`, value: `value-${i}`, n: String(i) });
}
await producer.close();

const consumer = new Consumer({ groupId: group, clientId: 'platformatic-consumer', bootstrapBrokers, deserializers: stringDeserializers });
// Committed per message, not by autocommit: leaving the loop ends the stream, which would drop a queued autocommit.
const stream = await consumer.consume({ autocommit: false, topics: [topic], mode: 'earliest', sessionTimeout: 10000, heartbeatInterval: 500 });
const received = new Map();
let count = 0;
const timer = setTimeout(() => check(false, 'records consumed within 30 s', count), 30000);
for await (const message of stream) {
  if (!received.has(message.partition)) received.set(message.partition, []);
  received.get(message.partition).push({ offset: message.offset, key: message.key, value: message.value, n: message.headers.get('n') });
  await message.commit();
  if (++count === 60) break;
}
clearTimeout(timer);
for (const [partition, records] of sent) {
  check(json(records) === json(received.get(partition)), `partition ${partition} as produced`, { produced: records, consumed: received.get(partition) });
}
await stream.close();
await consumer.close();

const committed = (groupOffsets) => new Map(groupOffsets.topics.flatMap((t) => t.partitions.map((p) => [p.partitionIndex, p.committedOffset])));
const [afterConsume] = await admin.listConsumerGroupOffsets({ groups: [group] });
const [latest] = await admin.listOffsets({ topics: [{ name: topic, partitions: [0, 1, 2].map((partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.LATEST })) }] });
for (const p of latest.partitions) {
  check(committed(afterConsume).get(p.partitionIndex) === p.offset, `committed offset of partition ${p.partitionIndex} is its end`, { afterConsume, latest });
}
const described = await admin.describeGroups({ groups: [group] });
check(described.get(group)?.state === 'Empty', 'group state after the consumer closed', [...described.values()]);

const busy = latest.partitions.find((p) => p.offset >= 2n);
await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: busy.partitionIndex, offset: 1n }] }] });
const [earliest] = await admin.listOffsets({ topics: [{ name: topic, partitions: [{ partitionIndex: busy.partitionIndex, timestamp: ListOffsetTimestamps.EARLIEST }] }] });
check(earliest.partitions[0].offset === 1n, 'earliest offset after deleteRecords', earliest);

const other = (busy.partitionIndex + 1) % 3;
await admin.alterConsumerGroupOffsets({ groupId: group, topics: [{ name: topic, partitionOffsets: [{ partition: busy.partitionIndex, offset: 1n }] }] });
await admin.deleteConsumerGroupOffsets({ groupId: group, topics: [{ name: topic, partitionIndexes: [other] }] });
const after = committed((await admin.listConsumerGroupOffsets({ groups: [group] }))[0]);
check(after.get(busy.partitionIndex) === 1n && !after.has(other) && after.size === 2, 'offsets after alterConsumerGroupOffsets and deleteConsumerGroupOffsets', [...after]);

const [logDirs] = await admin.describeLogDirs({ topics: [{ name: topic, partitions: [0, 1, 2] }] });
const sizes = logDirs.results.flatMap((r) => r.topics.flatMap((t) => t.partitions.map((p) => p.partitionSize)));
check(sizes.length === 3 && sizes.some((size) => size > 0n), 'describeLogDirs partition sizes', logDirs);

// Broker loggers: a namespace set to DEBUG at runtime, then its own level removed again.
const brokerId = String(metadata.brokers.keys().next().value);
const connections = 'SharedLog.Broker.Network.KafkaConnectionHandler';
const level = async (logger) => (await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.BROKER_LOGGER, resourceName: brokerId, configurationKeys: [logger] }] }))[0].configs[0]?.value;
const setLogger = (configOperation, value) => admin.incrementalAlterConfigs({
  resources: [{ resourceType: ConfigResourceTypes.BROKER_LOGGER, resourceName: brokerId, configs: [{ name: 'SharedLog.Broker.Network', configOperation, value }] }],
});
check((await level(connections)) === 'INFO', 'level of the connection logger', await level(connections));
await setLogger(IncrementalAlterConfigOperationTypes.SET, 'DEBUG');
check((await level(connections)) === 'DEBUG', 'level after SET DEBUG', await level(connections));
await setLogger(IncrementalAlterConfigOperationTypes.DELETE, null);
check((await level(connections)) === 'INFO', 'level after DELETE', await level(connections));

await admin.deleteGroups({ groups: [group] });
await admin.deleteTopics({ topics: [topic] });
check(!(await admin.listTopics()).includes(topic), 'topic listed after deleteTopics', topic);
await admin.close();
console.log(`platformatic ok: ${count} records over ${sent.size} partitions`);
