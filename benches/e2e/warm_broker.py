"""Warms a fresh broker before a measured run, as a long-running cluster is: an idempotent
producer writes 20,000 LZ4-compressed records of 400 bytes to a topic of its own. On a broker
that has just started, the first producer-id request fails with "coordinator load in progress"
(librdkafka retries half a second later), and the first compressed batches take a few hundred
milliseconds while the JVM loads and compiles the code that checks them. Paid here, before the
clock, for rowferry and the ceiling alike.

usage: warm_broker.py BOOTSTRAP
"""
import sys

from confluent_kafka import Producer

producer = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "enable.idempotence": True,
                     "compression.type": "lz4", "linger.ms": 5})
for i in range(20000):
    while True:
        try:
            producer.produce("bench.warm-up", key=str(i).encode(), value=(b"%08d" % i) * 50)
            break
        except BufferError:
            producer.poll(0.01)
if producer.flush(60) != 0:
    sys.exit("warm_broker.py: the warm-up records were not acknowledged")
