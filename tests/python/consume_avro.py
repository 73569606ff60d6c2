"""Stock-client check: read Avro records from a topic with confluent-kafka's AvroDeserializer
against a Confluent-compatible schema registry, and print each (key, value) as one JSON line.

usage: consume_avro.py BOOTSTRAP REGISTRY_URL TOPIC COUNT [ISOLATION]
ISOLATION is the consumer's isolation.level: read_committed (the default, librdkafka's too) or
read_uncommitted (also shows records of aborted and open Kafka transactions).
COUNT 0 reads every record the topic holds when called (up to each partition's end: its high
watermark, or the partition EOF — a topic written in Kafka transactions ends in a marker no record has). Each line also carries the record's
offset, partition, headers ([[name, text], …]) and Kafka timestamp (ms; [type, ms]: 1 CreateTime, 2
LogAppendTime); all partitions are read; order is kept within each. Values that JSON cannot hold are printed as text: bytes as hex, decimals and datetimes as str.
"""
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    return v


def topic_partitions(consumer, topic, seconds):
    """The topic's partitions, waiting up to SECONDS for it to exist: a connector creates it with
    its first record, and an empty assignment would read nothing and report "0 of COUNT"."""
    for _ in range(int(seconds * 5)):
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return meta.partitions
        time.sleep(0.2)
    raise SystemExit(f"topic {topic} does not exist")


def main():
    bootstrap, registry_url, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    isolation = sys.argv[5] if len(sys.argv) > 5 else "read_committed"
    registry = SchemaRegistryClient({"url": registry_url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rowferry-python-check", "enable.auto.commit": False,
                         "isolation.level": isolation, "enable.partition.eof": count == 0})
    partitions = topic_partitions(consumer, topic, 20)
    consumer.assign([TopicPartition(topic, p, 0) for p in sorted(partitions)])
    # COUNT 0: the partitions still to read, and where each ends now.
    ends = {}
    if count == 0:
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
    seen = 0
    idle = 0
    while (ends if count == 0 else seen < count) and idle < 100:
        msg = consumer.poll(0.2)
        if msg is None:
            idle += 1
            continue
        idle = 0
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ends.pop(msg.partition(), None)
                continue
            raise SystemExit(f"consumer error: {msg.error()}")
        if count == 0 and msg.offset() + 1 >= ends.get(msg.partition(), 0):
            ends.pop(msg.partition(), None)
        key = deserialize(msg.key(), SerializationContext(topic, MessageField.KEY)) if msg.key() else None
        value = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE)) if msg.value() else None
        headers = [[k, v.decode() if v is not None else None] for k, v in (msg.headers() or [])]
        print(json.dumps({"key": plain(key), "value": plain(value), "offset": msg.offset(), "partition": msg.partition(),
                          "headers": headers, "timestamp": list(msg.timestamp())}, sort_keys=True))
        seen += 1
    consumer.close()
    if count and seen < count:
        raise SystemExit(f"only {seen} of {count} records arrived")
    if count == 0 and ends:
        raise SystemExit(f"partitions {sorted(ends)} were not read to their end within 20 s of silence")


if __name__ == "__main__":
    main()
