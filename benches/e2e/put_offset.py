"""Stores a start position for `rowferry run` on its offsets topic, as rowferry would: the topic
created compacted with one partition, one record keyed by the connector name. Then initialises a
throwaway transactional producer: a fresh broker creates its transaction coordinator's topic
(__transaction_state, 50 partitions) on the first such request, which takes seconds here — a
one-time cost of the cluster, not of each exactly-once run, so it is paid before the clock starts
(as the warm-up transactions below are).

usage: put_offset.py BOOTSTRAP TOPIC CONNECTOR JSON
"""
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, connector, value = sys.argv[1:5]
admin = AdminClient({"bootstrap.servers": bootstrap})
created = admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"}), NewTopic(topic + ".warm-up", 1, 1)])
for future in created.values():
    future.result(30)
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
producer.produce(topic, key=connector, value=value, partition=0)
if producer.flush(30) != 0:
    sys.exit("put_offset.py: the offset was not acknowledged")
# ...and runs a few small transactions, so the broker's transaction paths (AddPartitionsToTxn,
# EndTxn, markers) are not first run, and compiled by its JIT, inside the measured run.
warm = Producer({"bootstrap.servers": bootstrap, "transactional.id": "rowferry-bench-warm-up"})
warm.init_transactions(60)
for i in range(50):
    warm.begin_transaction()
    warm.produce(topic + ".warm-up", key=str(i), value=value)
    warm.commit_transaction(30)
