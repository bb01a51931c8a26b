// kafkajs + @kafkajs/confluent-schema-registry against SharedLog: registers an Avro schema on the
// broker's registry port, produces records encoded with it (magic byte + schema id), consumes and
// decodes them, and checks that an incompatible change is refused. Exits non-zero on any difference.
const { Kafka, logLevel } = require('kafkajs');
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry');

const [bootstrap, registryUrl, topic] = process.argv.slice(2);
const fail = (message) => { console.error(message); process.exit(1); };

async function main() {
  const registry = new SchemaRegistry({ host: registryUrl });
  const schema = {
    type: 'record', name: 'Payment', namespace: 'compat.kafkajs',
    fields: [{ name: 'id', type: 'string' }, { name: 'amount', type: 'double' }],
  };
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject: `${topic}-value` });
  const again = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject: `${topic}-value` });
  if (again.id !== id) fail(`same schema got ids ${id} and ${again.id}`);
  const latest = await registry.getLatestSchemaId(`${topic}-value`);
  if (latest !== id) fail(`latest id ${latest}, expected ${id}`);

  const kafka = new Kafka({ clientId: 'compat-kafkajs-registry', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const sent = [];
  for (let i = 0; i < 20; i++) sent.push({ id: `p-${i}`, amount: i * 1.5 });
  const messages = [];
  for (const value of sent) messages.push({ key: value.id, value: await registry.encode(id, value) });
  await producer.send({ topic, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-group` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${received.length} of ${sent.length}`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value[0] !== 0 || message.value.readInt32BE(1) !== id) reject(new Error('wire format header is wrong'));
        received.push(await registry.decode(message.value));
        if (received.length === sent.length) { clearTimeout(timer); resolve(); }
      },
    });
  });
  await done;
  await consumer.disconnect();
  for (let i = 0; i < sent.length; i++) {
    if (received[i].id !== sent[i].id || received[i].amount !== sent[i].amount) fail(`record ${i}: ${JSON.stringify(received[i])}`);
  }

  // A new required field without a default cannot read old data: BACKWARD refuses it.
  const incompatible = { ...schema, fields: [...schema.fields, { name: 'currency', type: 'string' }] };
  let refused = false;
  try {
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(incompatible) }, { subject: `${topic}-value` });
  } catch (e) {
    refused = e.status === 409 || /incompatible/i.test(String(e.message));
  }
  if (!refused) fail('incompatible schema was not refused with 409');
  console.log(`kafkajs registry ok: id ${id}, ${received.length} records`);
}

main().catch((e) => fail(e.stack || String(e)));
