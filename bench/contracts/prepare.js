// Prepares the contract-gate load runs: registers an Avro, a JSON Schema and a Protobuf value schema, applies a
// contract (schema + 5 rules + 1 hashed field, reject on failure) to topics gate-avro, gate-json and gate-proto,
// and writes one Confluent-framed 1 KiB record of each kind to OUTDIR/avro.bin, OUTDIR/json.bin and
// OUTDIR/proto.bin for `SharedLog.LoadTest produce --value-file`. Topics plain-avro/plain-json/plain-proto get no
// contract.
// Usage: node bench/contracts/prepare.js REGISTRY_URL ADMIN_URL OUTDIR   (run from the repository root)
const fs = require('fs');
const path = require('path');
const avro = require(path.resolve('tests/compat/node_modules/avsc'));
const protobuf = require(path.resolve('tests/compat/node_modules/protobufjs'));

const [registry, admin, outDir] = process.argv.slice(2);

async function post(url, body, type) {
  const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${text}`);
  return JSON.parse(text);
}

const record = {
  id: 'order-000001', customer: 'customer-42', email: 'someone@example.com', amount: 123.45,
  currency: 'EUR', quantity: 3, country: 'DE', notes: 'x'.repeat(860),
};
const avroSchema = {
  type: 'record', name: 'Order', namespace: 'bench.gate', fields: [
    { name: 'id', type: 'string' }, { name: 'customer', type: 'string' }, { name: 'email', type: 'string' },
    { name: 'amount', type: 'double' }, { name: 'currency', type: 'string' }, { name: 'quantity', type: 'long' },
    { name: 'country', type: 'string' }, { name: 'notes', type: 'string' }],
};
const jsonSchema = {
  type: 'object', required: ['id', 'customer', 'email', 'amount', 'currency', 'quantity', 'country'],
  properties: {
    id: { type: 'string' }, customer: { type: 'string' }, email: { type: 'string' }, amount: { type: 'number', minimum: 0 },
    currency: { type: 'string', enum: ['EUR', 'USD'] }, quantity: { type: 'integer' }, country: { type: 'string' }, notes: { type: 'string' },
  },
};
// The same record as proto3 (the registry's text form); quantity is an int64 as the Avro long is.
const protoSchema = `syntax = "proto3";
package bench.gate;

message Order {
  string id = 1;
  string customer = 2;
  string email = 3;
  double amount = 4;
  string currency = 5;
  int64 quantity = 6;
  string country = 7;
  string notes = 8;
}
`;
const rules = `
rules:
  - name: positive-amount
    expr: value.amount > 0.0
  - name: known-currency
    expr: value.currency in ['EUR', 'USD']
  - name: quantity-range
    expr: value.quantity >= 1 && value.quantity <= 1000
  - name: email-shape
    expr: value.email.matches('^[^@]+@[^@]+$')
  - name: id-prefix
    expr: value.id.startsWith('order-')
privacy:
  - field: email
    action: hash
onFailure: reject
`;

function frame(id, payload, prefix = Buffer.alloc(0)) {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, prefix, payload]);
}

async function main() {
  const json = 'application/vnd.schemaregistry.v1+json';
  const avroId = (await post(`${registry}/subjects/gate-avro-value/versions`, JSON.stringify({ schema: JSON.stringify(avroSchema) }), json)).id;
  await post(`${registry}/subjects/plain-avro-value/versions`, JSON.stringify({ schema: JSON.stringify(avroSchema) }), json);
  const jsonId = (await post(`${registry}/subjects/gate-json-value/versions`, JSON.stringify({ schemaType: 'JSON', schema: JSON.stringify(jsonSchema) }), json)).id;
  const protoId = (await post(`${registry}/subjects/gate-proto-value/versions`, JSON.stringify({ schemaType: 'PROTOBUF', schema: protoSchema }), json)).id;
  for (const topic of ['gate-avro', 'gate-json', 'gate-proto']) {
    await post(`${admin}/contracts`, `topic: ${topic}\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\n${rules}`, 'application/yaml');
  }
  fs.mkdirSync(outDir, { recursive: true });
  const avroBytes = frame(avroId, avro.Type.forSchema(avroSchema).toBuffer(record));
  const jsonBytes = frame(jsonId, Buffer.from(JSON.stringify(record)));
  fs.writeFileSync(path.join(outDir, 'avro.bin'), avroBytes);
  fs.writeFileSync(path.join(outDir, 'json.bin'), jsonBytes);
  // Confluent's Protobuf framing names the message by its indexes: [0], the file's first message, is the single byte 0.
  const order = protobuf.parse(protoSchema).root.lookupType('bench.gate.Order');
  const protoBytes = frame(protoId, Buffer.from(order.encode(order.fromObject(record)).finish()), Buffer.from([0]));
  fs.writeFileSync(path.join(outDir, 'proto.bin'), protoBytes);
  console.log(`avro id ${avroId} (${avroBytes.length} bytes), json id ${jsonId} (${jsonBytes.length} bytes), proto id ${protoId} (${protoBytes.length} bytes)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
