"""confluent-kafka-python's Protobuf serializer and deserializer against a SharedLog topic with a contract.

The serializer registers each schema as the base64 of a serialized FileDescriptorProto (the message's
file, and each file it imports as a reference under its own subject), not as .proto text. The message
type is built at run time from a descriptor, so no protoc is needed. A contract (rule on a field,
email hashed, reject on failure) is applied through the admin port; the script then checks that a
valid record lands with the email hashed and the rest intact, and that a record breaking the rule is
refused with INVALID_RECORD.
Usage: python3 confluent_protobuf.py BOOTSTRAP REGISTRY_URL ADMIN_URL TOPIC
"""
import json
import sys
import time
import urllib.request

from confluent_kafka import DeserializingConsumer, KafkaException, Producer, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

bootstrap, registry, admin, topic = sys.argv[1:5]
failures = []

# shop/order.proto: message Order { string id = 1; int64 cents = 2; string email = 3; google.protobuf.Timestamp at = 4; }
field = descriptor_pb2.FieldDescriptorProto
order_file = descriptor_pb2.FileDescriptorProto(
    name="shop/order.proto", package="shop", syntax="proto3", dependency=[timestamp_pb2.DESCRIPTOR.name])
order_type = order_file.message_type.add(name="Order")
order_type.field.add(name="id", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
order_type.field.add(name="cents", number=2, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL)
order_type.field.add(name="email", number=3, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
order_type.field.add(name="at", number=4, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                     type_name=".google.protobuf.Timestamp")
pool = descriptor_pool.Default()
pool.Add(order_file)
Order = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("shop.Order"))

contract = f"""
topic: {topic}
class: certified
owner: team-shop
value:
  strategy: TopicNameStrategy
rules:
  - name: positive
    expr: value.cents > 0
privacy:
  - field: email
    action: hash
onFailure: reject
"""
request = urllib.request.Request(f"{admin}/contracts", data=contract.encode(), headers={"Content-Type": "application/yaml"}, method="POST")
urllib.request.urlopen(request, timeout=30).read()

registry_client = SchemaRegistryClient({"url": registry})
producer = SerializingProducer({
    "bootstrap.servers": bootstrap,
    "message.send.max.retries": 0,
    "key.serializer": StringSerializer("utf_8"),
    "value.serializer": ProtobufSerializer(Order, registry_client),
})
delivered = []


def report(error, message):
    delivered.append((error, message))


good = Order(id="o-1", cents=1250, email="ada@example.com")
good.at.FromSeconds(1_700_000_000)
# One record per batch: under `reject` a bad record fails its whole batch, as Kafka fails a batch.
producer.produce(topic, key="o-1", value=good, on_delivery=report)
producer.flush(30)
producer.produce(topic, key="o-2", value=Order(id="o-2", cents=-5, email="bob@example.com"), on_delivery=report)
producer.flush(30)

if len(delivered) != 2:
    failures.append(f"expected 2 delivery reports, got {len(delivered)}")
else:
    if delivered[0][0] is not None:
        failures.append(f"valid record refused: {delivered[0][0]}")
    if delivered[1][0] is None or delivered[1][0].name() != "INVALID_RECORD":
        failures.append(f"record breaking the rule: expected INVALID_RECORD, got {delivered[1][0]}")

# The serializer registered the imported file under its own subject, and the order's schema with a reference to it.
with urllib.request.urlopen(f"{registry}/subjects/{topic}-value/versions/latest", timeout=30) as response:
    registered = json.loads(response.read())
if "message Order" not in registered["schema"] or [r["name"] for r in registered.get("references", [])] != [timestamp_pb2.DESCRIPTOR.name]:
    failures.append(f"unexpected registered schema: {registered}")

consumer = DeserializingConsumer({
    "bootstrap.servers": bootstrap,
    "group.id": f"{topic}-readers",
    "auto.offset.reset": "earliest",
    "key.deserializer": StringDeserializer("utf_8"),
    "value.deserializer": ProtobufDeserializer(Order),
})
consumer.subscribe([topic])
records = []
deadline = time.time() + 60
while not records and time.time() < deadline:
    message = consumer.poll(1.0)
    if message is not None and message.error() is None:
        records.append(message)
consumer.close()

if len(records) != 1:
    failures.append(f"expected 1 stored record, got {len(records)}")
else:
    stored = records[0].value()
    if (stored.id, stored.cents, stored.at.seconds) != ("o-1", 1250, 1_700_000_000):
        failures.append(f"stored record changed: {stored}")
    if "@" in stored.email or len(stored.email) != 64:
        failures.append(f"email not hashed: {stored.email}")

# A sensitive topic: a producer whose message has a field (ssn = 9) that the registered schema lacks, sent under that
# schema's id (as a serializer told to use the latest version does; Debian's 1.9 serializer has no such option, so the
# newer message is framed here), is refused rather than stored with ssn in clear.
sensitive = f"{topic}-sensitive"
people_file = descriptor_pb2.FileDescriptorProto(name="crm/person.proto", package="crm", syntax="proto3")
person_type = people_file.message_type.add(name="Person")
person_type.field.add(name="id", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
newer_file = descriptor_pb2.FileDescriptorProto(name="crm/person_v2.proto", package="crm2", syntax="proto3")
newer_type = newer_file.message_type.add(name="Person")
newer_type.field.add(name="id", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
newer_type.field.add(name="ssn", number=9, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
pool.Add(people_file)
pool.Add(newer_file)
factory = message_factory.MessageFactory(pool)
Person = factory.GetPrototype(pool.FindMessageTypeByName("crm.Person"))
PersonV2 = factory.GetPrototype(pool.FindMessageTypeByName("crm2.Person"))
request = urllib.request.Request(f"{admin}/contracts", data=f"topic: {sensitive}\nclass: sensitive\nvalue: {{}}\nprivacy:\n  - field: id\n    action: hash\nonFailure: reject\n".encode(), headers={"Content-Type": "application/yaml"}, method="POST")
urllib.request.urlopen(request, timeout=30).read()
sensitive_reports = []
sensitive_producer = SerializingProducer({
    "bootstrap.servers": bootstrap,
    "message.send.max.retries": 0,
    "key.serializer": StringSerializer("utf_8"),
    "value.serializer": ProtobufSerializer(Person, registry_client),
})
sensitive_producer.produce(sensitive, key="p-1", value=Person(id="p-1"), on_delivery=lambda error, message: sensitive_reports.append(error))
sensitive_producer.flush(30)
with urllib.request.urlopen(f"{registry}/subjects/{sensitive}-value/versions/latest", timeout=30) as response:
    person_id = json.loads(response.read())["id"]
# Confluent framing: magic byte 0, the schema id, then the message indexes ([0]: the file's first message, one byte 0).
framed = bytes([0]) + person_id.to_bytes(4, "big") + bytes([0]) + PersonV2(id="p-2", ssn="123-45-6789").SerializeToString()
plain_producer = Producer({"bootstrap.servers": bootstrap, "message.send.max.retries": 0})
plain_producer.produce(sensitive, key=b"p-2", value=framed, on_delivery=lambda error, message: sensitive_reports.append(error))
plain_producer.flush(30)
if len(sensitive_reports) != 2 or sensitive_reports[0] is not None:
    failures.append(f"sensitive topic: the registered message should be stored, got {sensitive_reports}")
elif sensitive_reports[1] is None or sensitive_reports[1].name() != "INVALID_RECORD":
    failures.append(f"sensitive topic: a field the schema does not declare: expected INVALID_RECORD, got {sensitive_reports[1]}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"confluent-kafka-python protobuf ok: schema {registered['id']}, 1 record stored, 1 refused; sensitive topic refused an undeclared field")
