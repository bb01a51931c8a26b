"""kafka-python (pure Python client) against a SharedLog broker: produce, consume in a group with
commits, and verify content and order. Usage: kafka_python.py BOOTSTRAP TOPIC"""
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

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
print("kafka-python ok: 100 records, committed 100")
