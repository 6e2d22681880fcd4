"""Read the three export formats back the way a receiver would, and check them against their summary."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from shared.ledger.export import COLUMNS, ExportSummary, parse_csv_trailer


def read_csv(body: bytes) -> tuple[list[dict[str, Any]], ExportSummary]:
    data, _, trailer = body.rstrip(b"\n").rpartition(b"\n")
    reader = csv.DictReader(io.StringIO(data.decode() + "\n", newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    rows = [
        {
            **r,
            "entry_id": int(r["entry_id"]),
            "leg": int(r["leg"]),
            "debit": int(r["debit"]),
            "credit": int(r["credit"]),
        }
        for r in reader
    ]
    return rows, parse_csv_trailer(trailer)


def read_jsonl(body: bytes) -> tuple[list[dict[str, Any]], ExportSummary]:
    lines = body.decode().splitlines()
    rows = [json.loads(line) for line in lines[:-1]]
    assert all("trailer" not in r for r in rows)
    summary = msgspec.convert(json.loads(lines[-1])["trailer"], ExportSummary)
    return rows, summary


def read_parquet(body: bytes) -> tuple[list[dict[str, Any]], ExportSummary]:
    table = pq.read_table(pa.BufferReader(body))
    assert tuple(table.column_names) == COLUMNS
    summary = msgspec.json.decode(table.schema.metadata[b"ledger_export"], type=ExportSummary)
    return table.to_pylist(), summary


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def totals(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    sums: dict[str, tuple[int, int]] = {}
    for r in rows:
        d, c = sums.get(r["asset"], (0, 0))
        sums[r["asset"]] = (d + r["debit"], c + r["credit"])
    return sums


def summary_totals(summary: ExportSummary) -> dict[str, tuple[int, int]]:
    return {t.asset: (t.debits, t.credits) for t in summary.totals}
