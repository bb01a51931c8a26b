"""confluent-kafka-python's AdminClient against a SharedLog broker: create a topic, see it in the
metadata, describe its configs, add partitions, delete it. Usage: confluent_admin.py BOOTSTRAP TOPIC"""
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1, config={"retention.ms": "86400000"})]).values():
    future.result(timeout=30)
metadata = admin.list_topics(timeout=30)
if topic not in metadata.topics or len(metadata.topics[topic].partitions) != 2:
    sys.exit("topic missing from metadata or wrong partition count")
configs = list(admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values())[0].result(timeout=30)
if configs["retention.ms"].value != "86400000":
    sys.exit(f"retention.ms is {configs['retention.ms'].value}")
for future in admin.create_partitions([NewPartitions(topic, 3)]).values():
    future.result(timeout=30)
if len(admin.list_topics(topic=topic, timeout=30).topics[topic].partitions) != 3:
    sys.exit("partitions were not added")
for future in admin.delete_topics([topic]).values():
    future.result(timeout=30)
if topic in admin.list_topics(timeout=30).topics:
    sys.exit("topic still listed after delete")
print("confluent-kafka-python admin ok")
