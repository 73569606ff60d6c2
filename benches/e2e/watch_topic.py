"""Watches a topic fill: prints "first done count" — epoch seconds when it first held a record, when
it held at least N, and how many it held then.

usage: watch_topic.py BOOTSTRAP TOPIC N TIMEOUT_S

Polls the partitions' high watermarks every 50 ms (no records are read, so the watching costs the
connectors under test nothing measurable); a broker error (a new topic without a leader yet) is
polled again. Exits 1 if the topic never reaches N in TIMEOUT_S.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, topic, want, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rowferry-bench-watch"})
deadline = time.time() + timeout
first, partitions, count = None, [], 0
while time.time() < deadline:
    try:
        if not partitions:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None:
                partitions = [TopicPartition(topic, p) for p in meta.partitions]
        if partitions:
            count = sum(consumer.get_watermark_offsets(p, timeout=5)[1] for p in partitions)
    except KafkaException:
        time.sleep(0.05)
        continue
    if partitions:
        now = time.time()
        if count > 0 and first is None:
            first = now
        if count >= want:
            consumer.close()
            print(f"{first:.3f} {now:.3f} {count}", flush=True)
            sys.exit(0)
    time.sleep(0.05)
sys.exit(f"watch_topic: {topic} holds {count} of {want} records after {timeout:.0f} s")
