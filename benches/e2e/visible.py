"""Commit → visible latency, as a consumer sees it: reads a topic from its current end with the
given isolation level and, for each data record, takes its arrival time minus its source commit
time (the envelope's source.ts_us: MySQL's immediate_commit_timestamp). Prints "ready" once its
partitions are assigned at their end, then, when STOP_FILE appears and no record came for 1 s,
"count p50_ms p99_ms max_ms".

usage: visible.py BOOTSTRAP REGISTRY_URL TOPIC ISOLATION STOP_FILE

The arrival time is taken when poll() returns the record; records are decoded only after the
run. The consumer fetches as soon as records are readable (fetch.wait.max.ms 5), so what it adds
is small next to a Kafka transaction's interval, and the same in both delivery modes.
"""
import os
import sys
import time

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    bootstrap, registry_url, topic, isolation, stop_file = sys.argv[1:6]
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rowferry-bench-visible", "enable.auto.commit": False,
                         "isolation.level": isolation, "fetch.wait.max.ms": 5})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in meta.partitions])
    # The assignment takes effect with the first polls: poll until every position is resolved.
    deadline = time.time() + 10
    while time.time() < deadline and any(tp.offset < 0 for tp in consumer.position(consumer.assignment())):
        consumer.poll(0.05)
    print("ready", flush=True)
    # Arrival times and raw values only while reading (decoding as they come would make a
    # Python consumer the bottleneck at 5,000 records/s, and its backlog would read as latency).
    arrived, quiet_since = [], time.time()
    while not (os.path.exists(stop_file) and time.time() - quiet_since > 1.0):
        msg = consumer.poll(0.1)
        if msg is None or msg.error() or msg.value() is None:
            continue
        arrived.append((time.time_ns() // 1000, msg.value()))
        quiet_since = time.time()
    consumer.close()
    samples = []
    for arrived_us, raw in arrived:
        value = deserialize(raw, SerializationContext(topic, MessageField.VALUE))
        committed_us = (value.get("source") or {}).get("ts_us") or 0
        if value.get("op") in ("c", "u", "d") and committed_us > 0:
            samples.append((arrived_us - committed_us) / 1000.0)
    if not samples:
        sys.exit("visible.py: no record arrived")
    samples.sort()
    at = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    print(f"{len(samples)} {at(0.5):.2f} {at(0.99):.2f} {samples[-1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
