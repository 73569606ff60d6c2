"""Record-by-record comparison of rowferry's topic with Debezium's for the same table.

usage: compare_debezium.py BOOTSTRAP REGISTRY_URL ROWFERRY_TOPIC DEBEZIUM_TOPIC COUNT

Reads COUNT records from each topic (rowferry's: Avro through the registry, as consume_avro.py;
Debezium's: Connect's JSON with schemas), pairs them in order (same source, same binlog order),
and prints every difference once, grouped by where it is (op, key, a column of before/after, a
source field, an envelope field), with a count and the first example of each: the list of what
rowferry's Debezium-compatible mode still has to match. Tombstones are paired as records too.
Exit status 0 whatever the differences: this is a report, not a judge.
"""
import base64
import decimal
import json
import sys
from collections import OrderedDict

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from consume_avro import plain, topic_partitions  # noqa: E402


def read(bootstrap, topic, count, decode):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rowferry-compare", "enable.auto.commit": False})
    partitions = topic_partitions(consumer, topic, 60)
    if len(partitions) != 1:
        raise SystemExit(f"{topic} has {len(partitions)} partitions: the pairing needs one")
    consumer.assign([TopicPartition(topic, 0, 0)])
    out, idle = [], 0
    while len(out) < count and idle < 150:
        msg = consumer.poll(0.2)
        if msg is None:
            idle += 1
            continue
        idle = 0
        if msg.error():
            raise SystemExit(f"{topic}: {msg.error()}")
        out.append(decode(msg))
    consumer.close()
    if len(out) < count:
        raise SystemExit(f"{topic}: only {len(out)} of {count} records")
    return out


def debezium_types(schema):
    """field name -> (type, connect name, parameters) for each column of a Debezium value schema."""
    types = {}
    for f in (schema or {}).get("fields", []):
        if f["field"] in ("before", "after"):
            for c in f.get("fields", []):
                types[c["field"]] = (c["type"], c.get("name"), c.get("parameters") or {})
    return types


def comparable(value, kind):
    """Debezium's JSON for bytes (base64) and Connect decimals (base64 unscaled) as the Python
    client prints rowferry's (hex, decimal text), so only real differences of value remain."""
    if value is None or kind is None or kind[0] != "bytes" or not isinstance(value, str):
        return value
    raw = base64.b64decode(value)
    if kind[1] == "org.apache.kafka.connect.data.Decimal":
        unscaled = int.from_bytes(raw, "big", signed=True)
        exact = decimal.Context(prec=200)
        return str(decimal.Decimal(unscaled).scaleb(-int(kind[2].get("scale", "0")), context=exact))
    return raw.hex()


def main():
    bootstrap, registry_url, ours_topic, theirs_topic, count = sys.argv[1:6]
    count = int(count)
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))

    def ours(msg):
        key = deserialize(msg.key(), SerializationContext(ours_topic, MessageField.KEY)) if msg.key() else None
        value = deserialize(msg.value(), SerializationContext(ours_topic, MessageField.VALUE)) if msg.value() else None
        return plain(key), plain(value)

    types = {}

    def theirs(msg):
        key = json.loads(msg.key())["payload"] if msg.key() else None
        value = None
        if msg.value():
            doc = json.loads(msg.value())
            types.update(debezium_types(doc.get("schema")))
            value = doc["payload"]
        return key, value

    a = read(bootstrap, ours_topic, count, ours)
    b = read(bootstrap, theirs_topic, count, theirs)
    diffs = OrderedDict()

    def note(where, mine, yours):
        entry = diffs.setdefault(where, [0, mine, yours])
        entry[0] += 1

    for (ka, va), (kb, vb) in zip(a, b):
        if ka != kb:
            note("key", ka, kb)
        if (va is None) != (vb is None):
            note("tombstone", va is None, vb is None)
            continue
        if va is None:
            continue
        for field in sorted(set(va) | set(vb)):
            if field in ("before", "after", "source"):
                continue
            if field not in va or field not in vb:
                note(f"envelope.{field} present", field in va, field in vb)
            elif field not in ("ts_ms", "ts_us", "ts_ns") and va[field] != vb[field]:
                note(f"envelope.{field}", va[field], vb[field])
        for image in ("before", "after"):
            ia, ib = va.get(image), vb.get(image)
            if (ia is None) != (ib is None):
                note(f"{image} null", ia is None, ib is None)
                continue
            for col in sorted(set(ia or {}) | set(ib or {})):
                kind = types.get(col)
                x, y = (ia or {}).get(col, "<absent>"), comparable((ib or {}).get(col, "<absent>"), kind)
                if x != y:
                    note(f"column {col} [{(kind[1] or kind[0]) if kind else '?'}]", x, y)
        sa, sb = va.get("source") or {}, vb.get("source") or {}
        for field in sorted(set(sa) | set(sb)):
            if field not in sa or field not in sb:
                note(f"source.{field} present", field in sa, field in sb)
            elif field not in ("ts_ms", "ts_us", "ts_ns", "name", "version") and sa[field] != sb[field]:
                note(f"source.{field}", sa[field], sb[field])

    print(f"{len(a)} record pairs, {len(diffs)} kinds of difference")
    print("| where | records | rowferry | Debezium |")
    print("|---|---|---|---|")
    for where, (n, mine, yours) in diffs.items():
        show = lambda v: json.dumps(v)[:80]  # noqa: E731
        print(f"| {where} | {n} | `{show(mine)}` | `{show(yours)}` |")


if __name__ == "__main__":
    main()
