"""Stock-client check of a registry's write API: PyPI confluent-kafka's SchemaRegistryClient
registers, checks and relaxes compatibility on one subject, and prints what it saw as JSON.

usage: registry_client.py REGISTRY_URL SUBJECT
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError


def record(field_type):
    return json.dumps({"type": "record", "name": "V", "fields": [
        {"name": "a", "type": ["null", field_type], "default": None}]})


def main():
    url, subject = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    out = {}
    v1 = Schema(record("int"), "AVRO")
    out["id1"] = client.register_schema(subject, v1)
    out["id1_again"] = client.register_schema(subject, v1)
    retyped = Schema(record("string"), "AVRO")
    out["compatible"] = client.test_compatibility(subject, retyped)
    try:
        client.register_schema(subject, retyped)
        out["conflict"] = None
    except SchemaRegistryError as e:
        out["conflict"] = e.http_status_code
    out["set"] = client.set_compatibility(subject, "NONE")
    out["level"] = client.get_compatibility(subject)
    # A fresh client: the first one caches answers.
    client = SchemaRegistryClient({"url": url})
    out["id2"] = client.register_schema(subject, retyped)
    latest = client.get_latest_version(subject)
    out["latest"] = [latest.version, latest.schema_id]
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
