"""kafka-python (pure Python client) against a SharedLog broker: produce, consume in a group with
commits, and verify content and order; then its admin client on the topic's configs and the group.
Usage: kafka_python.py BOOTSTRAP TOPIC"""
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=5)
for i in range(100):
    producer.send(topic, key=b"k", value=f"py-{i}".encode())
producer.flush(timeout=30)
producer.close()

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="kafka-python-group",
                         auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=20000)
values = []
for message in consumer:
    values.append(message.value.decode())
    if len(values) == 100:
        break
consumer.commit()
tp = TopicPartition(topic, 0)
committed = consumer.committed(tp)
consumer.close()
expected = [f"py-{i}" for i in range(100)]
if values != expected:
    sys.exit(f"kafka-python read {len(values)} records, first differences: {[v for v in values if v not in expected][:3]}")
if committed != 100:
    sys.exit(f"kafka-python committed offset is {committed}, expected 100")

admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kafka-python-admin")


def retention():
    response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": None})])[0]
    (error, _, _, _, entries) = response.resources[0]
    return error, [(name, value) for (name, value, *_) in entries]


if retention() != (0, [("retention.ms", "604800000")]):
    sys.exit(f"kafka-python describe_configs: {retention()}")
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
if retention() != (0, [("retention.ms", "7200000")]):
    sys.exit(f"kafka-python describe_configs after alter_configs: {retention()}")
if ("kafka-python-group", "consumer") not in admin.list_consumer_groups():
    sys.exit(f"kafka-python list_consumer_groups: {admin.list_consumer_groups()}")
group = admin.describe_consumer_groups(["kafka-python-group"])[0]
if (group.error_code, group.state, group.members) != (0, "Empty", []):
    sys.exit(f"kafka-python describe_consumer_groups: {group}")
offsets = {tp: meta.offset for tp, meta in admin.list_consumer_group_offsets("kafka-python-group").items()}
if offsets != {tp: 100}:
    sys.exit(f"kafka-python list_consumer_group_offsets: {offsets}")
admin.close()
print("kafka-python ok: 100 records, committed 100; admin configs and group ok")
