"""Record-by-record comparison of rowferry's topics with Debezium's for the same tables.

usage: compare_debezium.py BOOTSTRAP REGISTRY_URL [--expect DOC] OURS=THEIRS=COUNT...

For each pair of topics, reads COUNT records from each (rowferry's: Avro through the registry;
Debezium's: Connect's JSON with schemas), pairs them in order (same source, same binlog order) and
compares them field by field: the key, op, before/after column values, source fields, envelope
fields, and the Connect schema of key and value. rowferry's Avro schema is read as Confluent's
AvroData reads it into a Connect schema (connect.name/version/parameters/type annotations,
["null", T] unions as optional), which is what a Connect-based sink sees.

Every difference is printed once with a count and its first example. With --expect DOC, the
differences must be exactly those listed in DOC (docs/avro.md) between the markers
`<!-- debezium-differences -->` and `<!-- /debezium-differences -->`: one table row each, its
first cell the difference's name in backticks. An unlisted difference, or a listed one that no
longer occurs, fails (exit 1). Without --expect it is a report (exit 0).
"""
import base64
import decimal
import json
import re
import sys
from collections import OrderedDict

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from consume_avro import plain, topic_partitions  # noqa: E402

# Values that differ by nature (times of processing, the connector's own version and name).
UNCOMPARED = {"ts_ms", "ts_us", "ts_ns", "name", "version"}


def read(bootstrap, topic, count, decode):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rowferry-compare", "enable.auto.commit": False})
    partitions = topic_partitions(consumer, topic, 60)
    if len(partitions) != 1:
        raise SystemExit(f"{topic} has {len(partitions)} partitions: the pairing needs one")
    consumer.assign([TopicPartition(topic, 0, 0)])
    out, idle = [], 0
    while len(out) < count and idle < 300:
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


# --- Avro schema -> Connect schema, as Confluent's AvroData reads it --------------------------

AVRO_TO_CONNECT = {"int": "int32", "long": "int64", "float": "float", "double": "double", "boolean": "boolean",
                   "string": "string", "bytes": "bytes"}


def connect_schema(avro, named, optional=False, default=None):
    """A Connect schema (as the JSON converter writes it: type, optional, name, version,
    parameters, default, fields/items) for an Avro schema; `named` resolves name references."""
    if isinstance(avro, list):
        rest = [b for b in avro if b != "null"]
        if len(rest) != 1:
            raise SystemExit(f"a union AvroData cannot map: {avro}")
        return connect_schema(rest[0], named, True, default)
    if isinstance(avro, str):
        if avro in named:
            return connect_schema(named[avro], named, optional, default)
        avro = {"type": avro}
    kind = avro["type"]
    if isinstance(kind, (dict, list)):
        return connect_schema(kind, named, optional, default)
    out = {"optional": optional}
    if kind == "record":
        full = avro["name"] if "." in avro["name"] else f"{avro.get('namespace', '')}.{avro['name']}".lstrip(".")
        named[full] = avro
        out["type"] = "struct"
        out["name"] = avro.get("connect.name", full)
        out["fields"] = [dict(connect_schema(f["type"], named, False, f.get("default")), field=f["name"])
                         for f in avro["fields"]]
    elif kind == "array":
        out["type"] = "array"
        out["items"] = connect_schema(avro["items"], named)
    else:
        out["type"] = avro.get("connect.type", AVRO_TO_CONNECT.get(kind, kind))
        logical = avro.get("logicalType")
        if logical == "decimal" and "connect.name" not in avro:
            out["name"], out["version"] = "org.apache.kafka.connect.data.Decimal", 1
            out["parameters"] = {"scale": str(avro.get("scale", 0)),
                                 "connect.decimal.precision": str(avro.get("precision"))}
        elif logical == "date":
            out["name"], out["version"] = "org.apache.kafka.connect.data.Date", 1
        elif logical in ("timestamp-millis",):
            out["name"], out["version"] = "org.apache.kafka.connect.data.Timestamp", 1
        elif logical:
            out["logicalType"] = logical  # AvroData has no Connect type for it: plain int64
    if "connect.name" in avro:
        out["name"] = avro["connect.name"]
    if "connect.version" in avro:
        out["version"] = avro["connect.version"]
    if "connect.parameters" in avro:
        out["parameters"] = avro["connect.parameters"]
    if avro.get("connect.default") is not None:
        out["default"] = avro["connect.default"]
    elif default is not None and kind not in ("record", "array"):
        out["default"] = default
    return out


def schema_differences(path, ours, theirs, note):
    """Notes every difference between two Connect schemas (JSON converter form)."""
    for attr in ("type", "optional", "name", "version", "parameters", "default"):
        a, b = ours.get(attr), theirs.get(attr)
        if a != b:
            note(f"schema {path} {attr}", a, b)
    if ours.get("type") == "struct" and theirs.get("type") == "struct":
        fa = [f["field"] for f in ours.get("fields", [])]
        fb = [f["field"] for f in theirs.get("fields", [])]
        if fa != fb and sorted(fa) == sorted(fb):
            note(f"schema {path} field order", fa, fb)
        by_name = {f["field"]: f for f in theirs.get("fields", [])}
        for f in ours.get("fields", []):
            if f["field"] in by_name:
                schema_differences(f"{path}.{f['field']}", f, by_name[f["field"]], note)
            else:
                note(f"schema {path}.{f['field']} present", True, False)
        for name in set(fb) - set(fa):
            note(f"schema {path}.{name} present", False, True)
    if ours.get("type") == "array" and theirs.get("type") == "array":
        schema_differences(f"{path}[]", ours.get("items", {}), theirs.get("items", {}), note)


# --- values ---------------------------------------------------------------------------------

def debezium_types(schema):
    """field name -> (type, connect name, parameters) for each column of a Debezium value schema."""
    types = {}
    for f in (schema or {}).get("fields", []):
        if f["field"] in ("before", "after"):
            for c in f.get("fields", []):
                types[c["field"]] = (c["type"], c.get("name"), c.get("parameters") or {}, c.get("fields") or [])
    return types


def comparable(value, kind):
    """Debezium's JSON for bytes (base64) and Connect decimals (base64 unscaled) as the Python
    client prints rowferry's (hex, decimal text), so only real differences of value remain."""
    if kind is not None and kind[0] == "struct" and isinstance(value, dict):
        inner = {f["field"]: (f["type"], f.get("name"), f.get("parameters") or {}, []) for f in kind[3]}
        return {k: comparable(v, inner.get(k)) for k, v in value.items()}
    if value is None or kind is None or kind[0] != "bytes" or not isinstance(value, str):
        return value
    raw = base64.b64decode(value)
    if kind[1] == "org.apache.kafka.connect.data.Decimal":
        unscaled = int.from_bytes(raw, "big", signed=True)
        exact = decimal.Context(prec=200)
        return str(decimal.Decimal(unscaled).scaleb(-int(kind[2].get("scale", "0")), context=exact))
    return raw.hex()


def compare_pair(bootstrap, registry, ours_topic, theirs_topic, count, note):
    deserialize = AvroDeserializer(registry)
    schema_ids = []

    def ours(msg):
        key = deserialize(msg.key(), SerializationContext(ours_topic, MessageField.KEY)) if msg.key() else None
        value = deserialize(msg.value(), SerializationContext(ours_topic, MessageField.VALUE)) if msg.value() else None
        ids = tuple(int.from_bytes(b[1:5], "big") if b else None for b in (msg.key(), msg.value()))
        schema_ids.append(ids)
        return plain(key), plain(value)

    schemas = []

    def theirs(msg):
        key, value, key_schema, value_schema = None, None, None, None
        if msg.key():
            doc = json.loads(msg.key())
            key, key_schema = doc["payload"], doc.get("schema")
        if msg.value():
            doc = json.loads(msg.value())
            value, value_schema = doc["payload"], doc.get("schema")
        schemas.append((key_schema, value_schema))
        return key, value

    a = read(bootstrap, ours_topic, count, ours)
    b = read(bootstrap, theirs_topic, count, theirs)
    seen_schemas = set()
    for i, ((ka, va), (kb, vb)) in enumerate(zip(a, b)):
        # Connect schemas, once per distinct pair of schema versions.
        for which, sid, theirs_schema in (("key", schema_ids[i][0], schemas[i][0]),
                                           ("value", schema_ids[i][1], schemas[i][1])):
            if sid is None or theirs_schema is None or (which, sid, json.dumps(theirs_schema)) in seen_schemas:
                continue
            seen_schemas.add((which, sid, json.dumps(theirs_schema)))
            avro = json.loads(registry.get_schema(sid).schema_str)
            # The two connectors write under different topic prefixes: names compare without them.
            ours_prefix = ours_topic.rsplit(".", 2)[0] + "."
            theirs_prefix = theirs_topic.rsplit(".", 2)[0] + "."
            text = json.dumps(connect_schema(avro, {})).replace(f'"{ours_prefix}', f'"{theirs_prefix}')
            schema_differences(which, json.loads(text), theirs_schema, note)
        types = debezium_types(schemas[i][1])
        if ka != kb:
            note("key", ka, kb)
        if (va is None) != (vb is None):
            note("tombstone", va is None, vb is None)
            continue
        if va is None:
            continue
        for field in sorted(set(va) | set(vb)):
            if field in ("before", "after", "source", "transaction"):
                continue
            if field not in va or field not in vb:
                note(f"envelope.{field} present", field in va, field in vb)
            elif field not in UNCOMPARED and va[field] != vb[field]:
                note(f"envelope.{field}", va[field], vb[field])
        ta, tb = va.get("transaction"), vb.get("transaction")
        if (ta is None) != (tb is None):
            note("transaction null", ta is None, tb is None)
        elif ta is not None and ta != tb:
            note("transaction", ta, tb)
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
        snapshot = sb.get("snapshot") not in (None, "false")
        for field in sorted(set(sa) | set(sb)):
            if field not in sa or field not in sb:
                note(f"source.{field} present", field in sa, field in sb)
            elif field not in UNCOMPARED and sa[field] != sb[field]:
                note(f"source.{field}{' (snapshot)' if snapshot else ''}", sa[field], sb[field])
    return len(a)


def expected(doc):
    text = open(doc, encoding="utf-8").read()
    m = re.search(r"<!-- debezium-differences -->(.*?)<!-- /debezium-differences -->", text, re.S)
    if not m:
        raise SystemExit(f"{doc} has no <!-- debezium-differences --> list")
    names = re.findall(r"^\|\s*`([^`]+)`", m.group(1), re.M)
    return set(names)


def main():
    args = sys.argv[1:]
    bootstrap, registry_url = args[0], args[1]
    rest = args[2:]
    doc = None
    if rest and rest[0] == "--expect":
        doc, rest = rest[1], rest[2:]
    registry = SchemaRegistryClient({"url": registry_url})
    diffs = OrderedDict()

    def note(where, mine, yours):
        entry = diffs.setdefault(where, [0, mine, yours])
        entry[0] += 1

    pairs = 0
    for spec in rest:
        ours_topic, theirs_topic, count = spec.split("=")
        pairs += compare_pair(bootstrap, registry, ours_topic, theirs_topic, int(count), note)

    print(f"{pairs} record pairs, {len(diffs)} kinds of difference")
    print("| where | records | rowferry | Debezium |")
    print("|---|---|---|---|")
    for where, (n, mine, yours) in diffs.items():
        show = lambda v: json.dumps(v)[:80]  # noqa: E731
        print(f"| `{where}` | {n} | `{show(mine)}` | `{show(yours)}` |")
    if doc is None:
        return
    listed = expected(doc)
    unlisted = sorted(set(diffs) - listed)
    stale = sorted(listed - set(diffs))
    for name in unlisted:
        print(f"UNLISTED difference (fix it, or list it with its reason in {doc}): {name}")
    for name in stale:
        print(f"STALE entry (no longer differs: remove it from {doc}): {name}")
    if unlisted or stale:
        sys.exit(1)
    print(f"the differences are exactly the {len(listed)} listed in {doc}")


if __name__ == "__main__":
    main()
