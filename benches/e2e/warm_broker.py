"""Warms a fresh broker before a measured run: one record from an idempotent producer. On a
broker that has just started, the first producer-id request fails with "coordinator load in
progress" and librdkafka retries it about half a second later; a long-running cluster has long
since loaded its coordinator. Paid here, before the clock, for rowferry and the ceiling alike.

usage: warm_broker.py BOOTSTRAP
"""
import sys

from confluent_kafka import Producer

producer = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "enable.idempotence": True})
producer.produce("bench.warm-up", value=b"warm")
if producer.flush(60) != 0:
    sys.exit("warm_broker.py: the warm-up record was not acknowledged")
