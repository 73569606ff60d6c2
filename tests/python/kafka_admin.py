"""Operator actions on a test Kafka with ACLs, through the stock client's admin API.

usage: kafka_admin.py BOOTSTRAP user NAME PASSWORD
           a SCRAM-SHA-512 user
       kafka_admin.py BOOTSTRAP allow PRINCIPAL topic|cluster|transactional-id NAME literal|prefixed OPERATION[,OPERATION...]
           ALLOW ACLs for PRINCIPAL (e.g. User:alice) from any host
BOOTSTRAP is the operator's listener (a super user).
"""
import sys

from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)


def wait(futures):
    for future in (futures.values() if isinstance(futures, dict) else futures):
        future.result(timeout=30)


def main():
    bootstrap, action = sys.argv[1], sys.argv[2]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if action == "user":
        name, password = sys.argv[3], sys.argv[4]
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        wait(admin.alter_user_scram_credentials([UserScramCredentialUpsertion(name, info, password.encode())]))
    elif action == "allow":
        principal, kind, name, pattern, operations = sys.argv[3:8]
        resource = {"topic": ResourceType.TOPIC, "cluster": ResourceType.BROKER,
                    "transactional-id": ResourceType.TRANSACTIONAL_ID}[kind]
        if kind == "cluster":
            name = "kafka-cluster"
        pattern_type = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}[pattern]
        bindings = [
            AclBinding(resource, name, pattern_type, principal, "*", AclOperation[op.upper()], AclPermissionType.ALLOW)
            for op in operations.split(",")
        ]
        wait(admin.create_acls(bindings))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
