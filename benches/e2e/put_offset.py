"""Stores a start position for `rowferry run` on its offsets topic, as rowferry would: the topic
created compacted with one partition, one record keyed by the connector name.

usage: put_offset.py BOOTSTRAP TOPIC CONNECTOR JSON
"""
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, connector, value = sys.argv[1:5]
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result(30)
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
producer.produce(topic, key=connector, value=value, partition=0)
if producer.flush(30) != 0:
    sys.exit("put_offset.py: the offset was not acknowledged")
