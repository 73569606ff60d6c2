"""Compares a MySQL table with the table Debezium's JDBC sink made of it in PostgreSQL.

usage: compare_sink.py NAMES KINDS SOURCE.tsv SINK.tsv [--show]

NAMES and KINDS are comma-separated, one per column; the TSV files are the two sides' rows
ordered by id (`mariadb -N -B`, `psql -At`; NULL printed as NULL). Values compare by kind:
int/num as numbers (1.50 = 1.5), bool (MySQL 1/0, PostgreSQL t/f), char (trailing blanks
dropped), hex, time (trailing zeros of the fraction and a `+00` zone dropped), json (parsed),
text as is. Exit 0 when every row and column is equal; 1 otherwise (with --show, each difference).
"""
import json
import re
import sys
from decimal import Decimal


def norm(kind, text):
    if text == "NULL":
        return None
    if kind in ("int", "num"):
        return Decimal(text)
    if kind == "bool":
        return {"1": True, "0": False, "t": True, "f": False}[text]
    if kind == "char":
        return text.rstrip(" ")
    if kind == "hex":
        return text.lower()
    if kind == "time":
        text = re.sub(r"\+00(:00)?$", "", text)
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    if kind == "json":
        return json.loads(text)
    return text


def rows(path, kinds):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            cells = line.split("\t")
            if len(cells) != len(kinds):
                raise SystemExit(f"{path}: {len(cells)} cells, expected {len(kinds)}: {line!r}")
            out.append([norm(k, c) for k, c in zip(kinds, cells)])
    return out


def main():
    names, kinds = sys.argv[1].split(","), sys.argv[2].split(",")
    show = "--show" in sys.argv
    source, sink = rows(sys.argv[3], kinds), rows(sys.argv[4], kinds)
    problems = []
    if len(source) != len(sink):
        problems.append(f"{len(source)} rows in MySQL, {len(sink)} in PostgreSQL: "
                        f"ids {[r[0] for r in source]} vs {[r[0] for r in sink]}")
    for a, b in zip(source, sink):
        for name, x, y in zip(names, a, b):
            if x != y:
                problems.append(f"id {a[0]} column {name}: MySQL {x!r}, PostgreSQL {y!r}")
    if show:
        for p in problems:
            print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
