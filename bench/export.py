"""Journal export benchmark (§7): postings per second and peak memory for CSV, JSONL and Parquet.

`python -m bench.export [--postings 1000000] [--formats csv,parquet,jsonl]` (`--postings 10000000` for
the large run) builds a fresh database `bench_export` through the real migrations, then seeds the
journal of one tenant straight into the tables with `generate_series` (two postings per entry, members
round-robin). The seeding BYPASSES the kernel API and its triggers (`session_replication_role =
replica`, superuser only), because posting millions of entries through `post_entry` would take longer
than the export it prepares; every seeded entry still balances and its accounts are untracked, so the
seeded ledger satisfies §4.3. After VACUUM ANALYZE it runs `shared.ledger.export.export_entries` — the
very code behind `GET /v1/ledger/entries` and `python -m ops export entries` — into a file via the
CLI's atomic writer, once per format, sampling this process's RSS every 20 ms (psutil).

Printed as a table and written to .data/bench/export.json. `BENCH_DATABASE_URL` picks the server
(default: an embedded one in .data/pg-bench).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from rich.console import Console
from rich.table import Table

from bench.ledger import with_database

__all__ = ["main"]

DATABASE = "bench_export"
TENANT = "bench"
console = Console()
err = Console(stderr=True)

_SEED_ACCOUNTS = """
INSERT INTO accounts (tenant_id, code, asset, owner_id, normal_side, track_balance)
SELECT $1, 'member:' || m || ':points', 'PTS', m::text, 'credit', false FROM generate_series(1, $2) AS m
UNION ALL SELECT $1, 'program:points_issued', 'PTS', NULL, 'debit', false
"""

# Entry i: earn of (i % 997) + 1 points by member i % members, one millisecond after the previous.
_SEED_ENTRIES = """
INSERT INTO entries (tenant_id, entry_id, kind, idempotency_key, legs_hash, effective_at, created_at, reason, source_ref)
OVERRIDING SYSTEM VALUE
SELECT $1, i, 'earn', 'seed:' || i, '\\x00'::bytea, t, t, CASE WHEN i % 10 = 0 THEN 'promo, "double"' END, 'order:' || i
  FROM generate_series($2::bigint, $3::bigint) AS i,
       LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + i * interval '1 millisecond' AS t) AS at
"""

_SEED_POSTINGS = """
INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
SELECT $1, i, leg.n, CASE WHEN leg.n = 1 THEN $5::bigint ELSE a.account_id END, 'PTS',
       CASE WHEN leg.n = 1 THEN (i % 997) + 1 ELSE -((i % 997) + 1) END
  FROM generate_series($2::bigint, $3::bigint) AS i
  CROSS JOIN (VALUES (1), (2)) AS leg(n)
  JOIN accounts a ON a.tenant_id = $1 AND a.code = 'member:' || ((i % $4) + 1) || ':points'
"""


async def seed(dsn: str, postings: int, members: int) -> None:
    entries = postings // 2
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "loyalty"})
    try:
        await conn.execute("SET session_replication_role = replica")  # bench only: see the docstring
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", TENANT)
        await conn.execute(_SEED_ACCOUNTS, TENANT, members)
        program = await conn.fetchval(
            "SELECT account_id FROM accounts WHERE tenant_id = $1 AND code = 'program:points_issued'", TENANT
        )
        step = 500_000
        for first in range(1, entries + 1, step):
            last = min(first + step - 1, entries)
            async with conn.transaction():
                await conn.execute(_SEED_ENTRIES, TENANT, first, last)
                await conn.execute(_SEED_POSTINGS, TENANT, first, last, members, program)
            err.print(f"  seeded {last * 2:,} postings")
        await conn.execute("SET session_replication_role = origin")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


class PeakRss:
    """Samples this process's resident memory in a thread until stopped."""

    def __init__(self, interval: float = 0.02) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


_DATABASE_TOTALS = """
SELECT count(*), coalesce(sum(amount) FILTER (WHERE amount > 0), 0)::bigint,
       coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)::bigint
  FROM postings WHERE tenant_id = $1
"""


def file_totals(out: Path, fmt: str) -> tuple[int, int, int]:
    """(rows, debits, credits) read back from the exported file itself, streaming (bounded memory)."""
    rows = debits = credits = 0
    if fmt == "parquet":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(out)
        for batch in parquet.iter_batches(columns=["debit", "credit"]):
            rows += batch.num_rows
            debits += pc.sum(batch.column("debit")).as_py() or 0
            credits += pc.sum(batch.column("credit")).as_py() or 0
        return rows, debits, credits
    with out.open(newline="") as handle:
        if fmt == "csv":
            for record in csv.DictReader(line for line in handle if not line.startswith("#")):
                rows += 1
                debits += int(record["debit"])
                credits += int(record["credit"])
        else:
            for line in handle:
                record = json.loads(line)
                if "trailer" in record:
                    continue
                rows += 1
                debits += record["debit"]
                credits += record["credit"]
    return rows, debits, credits


async def run_export(dsn: str, fmt: str, folder: Path) -> dict[str, Any]:
    from ops.finance import export_to_file
    from shared.ledger.export import ExportWindow

    out = folder / f"entries.{fmt}"
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "loyalty"})
    try:
        with PeakRss() as rss:
            began = time.perf_counter()
            summary = await export_to_file(conn, ExportWindow(tenant_id=TENANT), fmt, out, show_progress=False)  # type: ignore[arg-type]
            seconds = time.perf_counter() - began
        expected = tuple(await conn.fetchrow(_DATABASE_TOTALS, TENANT))
    finally:
        await conn.close()
    # Completeness, checked after the timing: the file's own rows and totals against the database's.
    found = file_totals(out, fmt)
    if found != expected or summary.rows != expected[0]:
        raise SystemExit(f"{fmt}: the file holds {found} (rows, debits, credits); the database {expected}")
    return {
        "format": fmt,
        "postings": summary.rows,
        "file_matches_database": True,  # (rows, debits, credits) read back from the file
        "seconds": round(seconds, 2),
        "postings_per_second": round(summary.rows / seconds),
        "file_mb": round(out.stat().st_size / 1e6, 1),
        "rss_start_mb": round(rss.start / 1e6, 1),
        "rss_peak_mb": round(rss.peak / 1e6, 1),
        "rss_growth_mb": round((rss.peak - rss.start) / 1e6, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--postings", type=int, default=1_000_000, help="postings to seed (10000000 for the big run)")
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--formats", default="csv,parquet,jsonl")
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default .data/bench/export.json)")
    parser.add_argument("--reuse", action="store_true", help="export the database a previous run seeded")
    args = parser.parse_args(argv)

    from ops.cli import migrate
    from ops.database import DATA_DIR, embedded_server

    admin_url = os.environ.get("BENCH_DATABASE_URL")
    if not admin_url:
        server = embedded_server("pg-bench")
        admin_url = server.get_uri()
    dsn = with_database(admin_url, DATABASE)
    if not args.reuse:
        asyncio.run(_recreate(admin_url))
        migrate(dsn, ["loyalty"])
        err.print(f"seeding {args.postings:,} postings (bypassing the API, see the docstring) ...")
        began = time.monotonic()
        asyncio.run(seed(dsn, args.postings, args.members))
        err.print(f"seeded in {time.monotonic() - began:.1f} s")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
            result = asyncio.run(run_export(dsn, fmt, Path(folder)))
            err.print(f"  {fmt}: {result['postings_per_second']:,} postings/s, peak RSS +{result['rss_growth_mb']} MB")
            results.append(result)
            (Path(folder) / f"entries.{fmt}").unlink()

    table = Table(
        title=f"export of {args.postings:,} postings (cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f})"
    )
    for column in ("format", "postings/s", "seconds", "file MB", "RSS start MB", "RSS peak MB", "growth MB"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r["format"],
            f"{r['postings_per_second']:,}",
            str(r["seconds"]),
            str(r["file_mb"]),
            str(r["rss_start_mb"]),
            str(r["rss_peak_mb"]),
            str(r["rss_growth_mb"]),
        )
    console.print(table)
    output = args.output or DATA_DIR / "bench" / "export.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"postings": args.postings, "load_average": os.getloadavg(), "results": results}
    output.write_text(json.dumps(payload, indent=2))
    return 0


async def _recreate(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
