// kafkajs (pure JavaScript client) against a SharedLog broker: produce, consume in a group with
// commits, verify content and order. Usage: node kafkajs.js BOOTSTRAP TOPIC
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'kafkajs-compat', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  await admin.disconnect();

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const messages = Array.from({ length: 100 }, (_, i) => ({ key: 'k', value: `js-${i}` }));
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: 'kafkajs-group', sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length} records`)), 30000);
    consumer.run({
      autoCommit: true,
      eachMessage: async ({ message }) => {
        seen.push(message.value.toString());
        if (seen.length === 100) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  const expected = messages.map((m) => m.value);
  if (JSON.stringify(seen) !== JSON.stringify(expected)) {
    throw new Error(`kafkajs read ${seen.length} records out of order or different`);
  }

  const check = kafka.admin();
  await check.connect();
  const offsets = await check.fetchOffsets({ groupId: 'kafkajs-group', topics: [topic] });
  await check.disconnect();
  const committed = offsets[0].partitions[0].offset;
  if (committed !== '100') {
    throw new Error(`committed offset is ${committed}, expected 100`);
  }
  console.log('kafkajs ok: 100 records, committed 100');
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
