"""Peer for scripts/bench: python-mysql-replication (PyPI mysql-replication) decoding every row
of a range of binlog files, decode only (it publishes nothing). Prints `seconds rows`.

usage: peer.py PORT FIRST_FILE LAST_FILE
"""
import sys
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import RotateEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent


def main():
    port, first, last = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    settings = {"host": "127.0.0.1", "port": port, "user": "root", "passwd": "rowferry"}
    stream = BinLogStreamReader(
        connection_settings=settings, server_id=9455, log_file=first, log_pos=4, resume_stream=True,
        blocking=False, only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, RotateEvent])
    rows = 0
    started = time.monotonic()
    for event in stream:
        if isinstance(event, RotateEvent):
            if event.next_binlog > last:
                break
            continue
        rows += len(event.rows)  # decodes every value of every row
    stream.close()
    print(f"{time.monotonic() - started:.3f} {rows}")


if __name__ == "__main__":
    main()
