"""`python -m bench.http` (`make bench`): see bench/http/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import itertools
import json
import logging
import os
import platform
import secrets
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.http.core import (
    Context,
    CpuWindow,
    LoadResult,
    PgbenchScript,
    Scenario,
    ServicePlugin,
    ServiceProcess,
    capture_request,
    check_pgbench,
    ensure_py_spy,
    ensure_wrk,
    profile_cprofile,
    profile_py_spy,
    recording_app,
    run_pgbench,
    run_wrk,
    target_value,
    to_pgbench,
)
from bench.ledger import with_database

# Service modules: each exposes PLUGIN (a ServicePlugin) and may expose add_arguments(parser).
SERVICES = {"referral": "bench.http.referral", "loyalty": "bench.http.loyalty"}
DATABASE = "bench_http"  # each run's database: a copy of the seeded one
SEED_PREFIX = "bench_http_seed_"  # + the seed's fingerprint: the template of each run's database
SEEDS_KEPT = 2  # seeded databases kept (e.g. the default run's and one with other sizes)
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
TENANT = "bench"

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _load(name: str) -> Any:
    return importlib.import_module(SERVICES[name])


def _postgres_process(server: Any, admin_url: str) -> psutil.Process | None:
    """The postmaster, to count PostgreSQL's CPU (all its backends); None when it is not on this machine."""
    if server is not None:
        pid = server.get_pid()
        return psutil.Process(pid) if pid else None
    for proc in psutil.process_iter(["name", "ppid"]):
        try:
            if proc.info["name"] in ("postgres", "postmaster") and psutil.Process(proc.info["ppid"]).name() not in (
                "postgres",
                "postmaster",
            ):
                return proc
        except psutil.Error:
            continue
    return None


async def _recreate(admin_url: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    finally:
        await conn.close()


async def _drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def _database_exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name))
    finally:
        await conn.close()


async def _server_version(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        return str(await conn.fetchval("SELECT version()"))
    finally:
        await conn.close()


def _fingerprint(
    admin_url: str, plugins: Sequence[ServicePlugin], selections: dict[str, list[Scenario]], args: Any
) -> str:
    """What the seeded database depends on: the code that wrote it, the sizes asked for, the server."""
    digest = hashlib.sha256()
    patterns = ["shared/**/*.py", "ops/*.py", *(f"services/{p.name}/**/*.py" for p in plugins)]
    paths = [path for pattern in patterns for path in PROJECT_DIR.glob(pattern)]
    paths += [Path(_load(p.name).__file__) for p in plugins]  # the seeding code
    for path in sorted(paths):
        digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    digest.update(_seed_params(plugins, selections, args).encode())
    digest.update(asyncio.run(_server_version(admin_url)).encode())
    return digest.hexdigest()


def _seed_params(plugins: Sequence[ServicePlugin], selections: dict[str, list[Scenario]], args: Any) -> str:
    """The sizes and scenarios a seed was made for (part of the fingerprint; `--keep-seed` matches on it)."""
    params = {p.name: [p.seed_params(args), sorted(s.name for s in selections[p.name])] for p in plugins}
    return json.dumps(params, sort_keys=True)


def _seeded_database(
    admin_url: str,
    postgres: psutil.Process | None,
    plugins: Sequence[ServicePlugin],
    selections: dict[str, list[Scenario]],
    args: Any,
    operator_token: str,
    out_dir: Path,
) -> tuple[str, dict[str, str], dict[str, Any], bool]:
    """A database migrated, provisioned and seeded over HTTP, kept between runs as the template of each
    run's database: reused while nothing it depends on has changed (`--reseed` forces a new one).
    Returns (its name, the API keys, what seeding recorded, whether it was reused)."""
    from ops.cli import migrate, provision
    from shared.tenants import TenantIn

    cache_file = out_dir / "seed.json"
    fingerprint = _fingerprint(admin_url, plugins, selections, args)
    seed_db = SEED_PREFIX + fingerprint[:12]
    entries: list[dict[str, Any]] = []
    if cache_file.exists():
        try:
            entries = [e for e in json.loads(cache_file.read_text()) if isinstance(e, dict)]
        except (ValueError, TypeError):
            entries = []
    entries = [e for e in entries if asyncio.run(_database_exists(admin_url, e.get("database", "")))]
    found = next((e for e in entries if e.get("fingerprint") == fingerprint), None)
    if found is None and args.keep_seed and not args.reseed:
        # The code changed but not what seeding writes (the caller says so): the newest seed of these sizes.
        params = _seed_params(plugins, selections, args)
        found = next((e for e in entries if e.get("params") == params), None)
        if found:
            seed_db = found["database"]
            # Older code may have left it at an older migration: bring its schema to this code's head
            # (as a deployment upgrades its database), or the service would meet columns it lacks.
            err.print(f"seeded database: migrating {seed_db} to this code's migrations (--keep-seed)")
            migrate(with_database(admin_url, seed_db))
    if found and not args.reseed:
        why = "same code, sizes and server" if found.get("fingerprint") == fingerprint else "--keep-seed: same sizes"
        err.print(f"seeded database: reusing {seed_db} ({why}; --reseed to rebuild)")
        return seed_db, found["keys"], found["seeded"], True
    seed_dsn = with_database(admin_url, seed_db)
    asyncio.run(_recreate(admin_url, seed_db))
    migrate(seed_dsn)
    keys = {"admin": "ak_" + secrets.token_urlsafe(32), "client": "ak_" + secrets.token_urlsafe(32)}
    asyncio.run(
        provision(
            seed_dsn,
            TENANT,
            TenantIn(name="HTTP benchmark"),
            {"admin": ["admin", "client"], "client": ["client"]},
            keys,
        )
    )
    seeded: dict[str, Any] = {}
    for plugin in plugins:
        service = ServiceProcess(plugin, seed_dsn, operator_token, args.pool_size, out_dir)
        try:
            service.wait_ready()
            ctx = Context(
                service=plugin.name,
                base_url=service.base_url,
                dsn=seed_dsn,
                tenant_id=TENANT,
                admin_key=keys["admin"],
                client_key=keys["client"],
                run_tag="seed",
                args=args,
                selected={s.name for s in selections[plugin.name]},
            )
            err.print(f"{plugin.name}: seeding over HTTP ({service.base_url}) ...")
            window = CpuWindow(service.handle, postgres)
            window.start()
            requests = asyncio.run(_seed(plugin, ctx))
            shares = window.stop()
            seeded[plugin.name] = {
                **ctx.seeded,
                "requests": requests,
                "seconds": round(shares["wall_s"], 1),
                "requests_per_s": round(requests / shares["wall_s"], 1),
                "service_cpu_pct": round(shares["server_cpu_pct"], 1),
                "postgres_cpu_pct": round(shares["postgres_cpu_pct"], 1),
                "machine_busy_pct": round(shares["machine_busy_pct"], 1),
            }
            err.print(
                f"{plugin.name}: seeded with {requests:,} requests in {shares['wall_s']:.1f} s "
                f"({requests / shares['wall_s']:,.0f}/s; service CPU {shares['server_cpu_pct']:.0f}%, "
                f"postgres {shares['postgres_cpu_pct']:.0f}%, machine busy {shares['machine_busy_pct']:.0f}%)"
            )
        finally:
            service.stop()
    asyncio.run(_vacuum(seed_dsn))  # once filled, so that every run starts from analysed tables
    params = _seed_params(plugins, selections, args)
    entry = {"fingerprint": fingerprint, "params": params, "database": seed_db, "keys": keys, "seeded": seeded}
    entries = [entry, *(e for e in entries if e["database"] != seed_db)]
    for stale in entries[SEEDS_KEPT:]:
        asyncio.run(_drop(admin_url, stale["database"]))
    cache_file.write_text(json.dumps(entries[:SEEDS_KEPT], indent=2))
    cache_file.chmod(0o600)
    return seed_db, keys, seeded, False


async def _vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _seed(plugin: ServicePlugin, ctx: Context) -> int:
    """Seed over HTTP; returns the number of requests made."""
    concurrency = ctx.args.seed_concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    count = 0

    async def counted(_: httpx.Response) -> None:
        nonlocal count
        count += 1

    hooks = {"response": [counted]}
    async with httpx.AsyncClient(base_url=ctx.base_url, limits=limits, timeout=60, event_hooks=hooks) as client:
        await plugin.seed(ctx, client)
    return count


async def _capture_all(
    plugin: ServicePlugin, ctx: Context, scenarios: Sequence[Scenario], operator_token: str, out_dir: Path
) -> dict[str, PgbenchScript]:
    scripts: dict[str, PgbenchScript] = {}
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the service's logging setup leaves INFO on
    helper = await asyncpg.connect(ctx.dsn, server_settings={"search_path": plugin.name, "timezone": "UTC"})
    try:
        for name in ("json", "jsonb"):  # as shared.db's pool: JSON values go through json.dumps
            await helper.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        async with recording_app(plugin, ctx.dsn, operator_token) as client:
            for scenario in scenarios:
                reference = await capture_request(client, ctx, scenario.capture(ctx, 0))
                capture = scenario.capture(ctx, 1)
                calls = await capture_request(client, ctx, capture)
                text, constants, account = await to_pgbench(helper, calls, capture, reference)
                script = PgbenchScript(text=text, variables={**constants, **scenario.pgbench_vars(ctx)})
                stem = f"{plugin.name}.{scenario.name}"
                header = f"-- pgbench script of {stem}; its variables (-D name=value) are in {stem}.vars.json\n"
                (out_dir / f"{stem}.sql").write_text(header + text)
                (out_dir / f"{stem}.vars.json").write_text(json.dumps(script.variables, indent=2))
                request = {"method": capture.method, "path": capture.path, "json": capture.json}
                record = {"request": request, "substitutions": capture.substitutions, "calls": account}
                (out_dir / f"{stem}.captured.json").write_text(json.dumps(record, indent=2, default=str))
                scripts[scenario.name] = script
                err.print(f"  captured {scenario.name}: {len(calls)} statements -> {out_dir / (stem + '.sql')}")
    finally:
        await helper.close()
    return scripts


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def _report(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="HTTP (wrk) beside pgbench running the same SQL, same server, same run",
        caption="ratio = req/s ÷ pgbench TPS; CPU in % of the machine (all cores) over the measured run; "
        "svc ms/req = the service's CPU per request; 1 conn = wrk with one connection (no queueing)",
    )
    columns = [
        ("scenario", "left"),
        ("clients", "right"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("pgbench TPS", "right"),
        ("pgbench p99", "right"),
        ("ratio", "right"),
        ("wrk CPU", "right"),
        ("svc CPU", "right"),
        ("pg CPU", "right"),
        ("busy", "right"),
        ("svc ms/req", "right"),
        ("1 conn p50/p99", "right"),
        ("non-2xx", "right"),
    ]
    cores = psutil.cpu_count() or 1
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name == "scenario")  # type: ignore[arg-type]
    for row in rows:
        w: LoadResult = row["wrk"]
        p: LoadResult | None = row["pgbench"]
        table.add_row(
            f"{row['service']}.{row['scenario']}",
            str(w.clients),
            _fmt(w.rate),
            _fmt(w.p50_ms, 2),
            _fmt(w.p99_ms, 2),
            _fmt(p.rate) if p else "–",
            _fmt(p.p99_ms, 2) if p else "–",
            _fmt(row["ratio"], 2),
            f"{w.client_cpu_pct:.1f}%",
            f"{w.server_cpu_pct:.0f}%",
            f"{w.postgres_cpu_pct:.0f}%",
            f"{w.machine_busy_pct:.0f}%",
            _fmt(w.server_cpu_pct / 100 * cores / w.rate * 1000 if w.rate else None, 2),
            f"{row['alone'].p50_ms:.1f}/{row['alone'].p99_ms:.1f}" if row["alone"] else "–",
            str(w.failures),
        )
    return table


def _print_profile(name: str, summary: dict[str, Any]) -> None:
    if "error" in summary:
        console.print(f"[yellow]profile {name}: {summary['error']}[/yellow]")
        return
    cpu = "us_per_request" in summary["self"][0] if summary["self"] else False
    what = f"{summary['cpu_us_per_request']:,.0f} µs CPU per request" if cpu else f"{summary['samples']} samples"
    table = Table(title=f"{name}: {what}, {summary['rps_while_profiled']:,.0f} req/s while profiled")
    table.add_column("µs/req" if cpu else "self %", justify="right")
    table.add_column("hottest functions, self time")
    table.add_column("µs/req" if cpu else "incl. %", justify="right")
    table.add_column("project code, inclusive time")
    value = (lambda f: f"{f['us_per_request']:,.0f}") if cpu else (lambda f: f"{f['pct']:.1f}")
    for a, b in itertools.zip_longest(summary["self"][:15], summary["inclusive_project"][:15]):
        table.add_row(value(a) if a else "", a["frame"] if a else "", value(b) if b else "", b["frame"] if b else "")
    console.print(table)
    console.print(
        "self time by package: "
        + ", ".join(
            (f"{p['frame']} {p['us_per_request']:,.0f} µs" if cpu else f"{p['frame']} {p['pct']:.0f}%")
            for p in summary["self_by_package"][:10]
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--services", default=",".join(SERVICES), help=f"from {','.join(SERVICES)}")
    parser.add_argument("--scenarios", default="", help="comma-separated scenario names (default: each service's)")
    parser.add_argument("--clients", default="32", help="connections, comma-separated (default 32)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per run (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each run (default 3)")
    parser.add_argument(
        "--alone-seconds", type=float, default=5.0, help="wrk at 1 connection per scenario, seconds (0: skip)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: 2 cores here)")
    parser.add_argument("--pool-size", type=int, default=40, help="the service's connection pool (default 40)")
    parser.add_argument("--seed-concurrency", type=int, default=32, help="HTTP requests in flight while seeding")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the seeded database is current")
    parser.add_argument(
        "--keep-seed",
        action="store_true",
        help="reuse the newest seeded database of the same sizes even if the code changed: for before/after "
        "runs of a change that does not change what seeding writes (BENCH_ARGS=--keep-seed)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cprofile",
        default="",
        help="also profile the marked scenarios: cprofile (default; CPU clock, in the service), py-spy, or both",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default .data/bench/http.json)")
    for name in SERVICES:
        module = _load(name)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args(argv)

    names = [s.strip() for s in args.services.split(",") if s.strip()]
    unknown = set(names) - set(SERVICES)
    if unknown:
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    plugins: list[ServicePlugin] = [_load(n).PLUGIN for n in names]
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    available = {s.name for p in plugins for s in p.scenarios}
    if wanted - available:
        parser.error(
            f"unknown scenarios: {', '.join(sorted(wanted - available))} (have {', '.join(sorted(available))})"
        )
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if max(clients) > 60:
        parser.error("at most 60 clients: the embedded server allows 100 connections (service pool + pgbench)")

    wrk = ensure_wrk(err.print)
    if wrk is None:
        err.print("[red]wrk is not installed. Install it with:  sudo apt-get install -y wrk[/red]")
        return 2
    profile_with = {p.strip() for p in args.profile.split(",") if p.strip()}
    if profile_with - {"cprofile", "py-spy"}:
        parser.error("--profile takes cprofile, py-spy or cprofile,py-spy")
    py_spy = ensure_py_spy(err.print) if "py-spy" in profile_with else None

    from ops.database import DATA_DIR, embedded_server

    began = time.monotonic()
    admin_url = os.environ.get("BENCH_DATABASE_URL")
    server = None
    if admin_url:
        err.print("database: BENCH_DATABASE_URL")
    else:
        server = embedded_server("pg-bench")  # stops when this process exits, unless others joined it
        admin_url = server.get_uri()
        err.print(f"database: embedded, data in {server.pgdata}")
    postgres = _postgres_process(server, admin_url)
    dsn = with_database(admin_url, DATABASE)
    out_dir = DATA_DIR / "bench" / "http"
    out_dir.mkdir(parents=True, exist_ok=True)

    selections = {
        plugin.name: [s for s in plugin.scenarios if (s.name in wanted if wanted else s.default)] for plugin in plugins
    }
    plugins = [plugin for plugin in plugins if selections[plugin.name]]
    operator_token = secrets.token_urlsafe(24)
    seed_db, keys, seeded, reused = _seeded_database(
        admin_url, postgres, plugins, selections, args, operator_token, out_dir
    )
    asyncio.run(_recreate(admin_url, DATABASE, template=seed_db))
    run_tag = datetime.now(UTC).strftime("%H%M%S") + secrets.token_hex(2)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    profiles: dict[str, Any] = {}
    commands: dict[str, str] = {}
    for plugin in plugins:
        scenarios = selections[plugin.name]
        service = ServiceProcess(plugin, dsn, operator_token, args.pool_size, out_dir)
        commands[plugin.name] = service.command
        try:
            service.wait_ready()
            ctx = Context(
                service=plugin.name,
                base_url=service.base_url,
                dsn=dsn,
                tenant_id=TENANT,
                admin_key=keys["admin"],
                client_key=keys["client"],
                run_tag=run_tag,
                args=args,
                selected={s.name for s in scenarios},
                seeded=dict(seeded.get(plugin.name, {})),
            )
            scripts = asyncio.run(_capture_all(plugin, ctx, scenarios, operator_token, out_dir))
            for scenario in scenarios:
                check_pgbench(dsn, plugin.name, scripts[scenario.name], scenario.name)
            for scenario in scenarios:
                for n in clients:
                    label = f"{plugin.name}: {scenario.label}"
                    w = run_wrk(
                        wrk,
                        service,
                        postgres,
                        scenario.lua,
                        lambda tag, s=scenario, c=ctx: s.lua_args(c, tag),
                        n,
                        args.threads,
                        args.warmup,
                        args.duration,
                    )
                    if w.failures:
                        failures.append(
                            f"{label} @{n}: {w.detail['non_2xx']} non-2xx {w.detail['statuses']}, socket errors "
                            f"{w.detail['socket_errors']}; first: {w.detail['first_non_2xx']}"
                        )
                    p = run_pgbench(
                        dsn, plugin.name, postgres, scripts[scenario.name], n, args.warmup, args.duration, scenario.name
                    )
                    if p.failures:
                        failures.append(f"{label} @{n}: pgbench {p.failures} failed transactions")
                    ratio = w.rate / p.rate if p.rate else None
                    err.print(
                        f"  {label} @{n}: {w.rate:,.0f} req/s p50 {w.p50_ms:.1f} p99 {w.p99_ms:.1f} ms | "
                        f"pgbench {p.rate:,.0f} TPS p99 {p.p99_ms:.1f} ms | ratio {_fmt(ratio, 2)} | "
                        f"wrk CPU {w.client_cpu_pct:.1f}%"
                    )
                    rows.append(
                        {
                            "service": plugin.name,
                            "scenario": scenario.name,
                            "label": label,
                            "wrk": w,
                            "pgbench": p,
                            "ratio": ratio,
                            "targets": scenario.targets,
                            "alone": None,
                        }
                    )
                if args.alone_seconds > 0:
                    # One connection: the request's own latency, without queueing behind 31 others.
                    alone = run_wrk(
                        wrk,
                        service,
                        postgres,
                        scenario.lua,
                        lambda tag, s=scenario, c=ctx: s.lua_args(c, tag),
                        1,
                        1,
                        1.0,
                        args.alone_seconds,
                    )
                    if alone.failures:
                        failures.append(f"{label} alone: {alone.detail['non_2xx']} non-2xx")
                    err.print(f"  {label} alone: p50 {alone.p50_ms:.2f} p99 {alone.p99_ms:.2f} ms")
                    for row in rows:
                        if row["scenario"] == scenario.name and row["service"] == plugin.name:
                            row["alone"] = alone
            if "py-spy" in profile_with and py_spy:
                for scenario in (s for s in scenarios if s.profile):
                    n = max(clients)
                    out = out_dir / f"py-spy-{plugin.name}.{scenario.name}.txt"
                    err.print(f"  profiling {scenario.name} @{n} with py-spy ...")
                    profiles[f"py-spy {plugin.name}.{scenario.name}"] = profile_py_spy(
                        py_spy,
                        wrk,
                        service,
                        scenario.lua,
                        scenario.lua_args(ctx, run_tag + "p"),
                        n,
                        args.threads,
                        args.duration,
                        out,
                    )
        finally:
            service.stop()
        if "cprofile" in profile_with:
            for scenario in (s for s in scenarios if s.profile):
                n = max(clients)
                out = out_dir / f"cprofile-{plugin.name}.{scenario.name}.pstats"
                err.print(f"  profiling {scenario.name} @{n} with cProfile (CPU clock) ...")
                profiled = ServiceProcess(plugin, dsn, operator_token, args.pool_size, out_dir, profile_to=out)
                try:
                    profiled.wait_ready()
                    profiles[f"cprofile {plugin.name}.{scenario.name}"] = profile_cprofile(
                        wrk,
                        profiled,
                        scenario.lua,
                        lambda tag, s=scenario, c=ctx: s.lua_args(c, tag),
                        n,
                        args.threads,
                        args.warmup,
                        args.duration,
                    )
                finally:
                    profiled.stop()

    console.print(_report(rows))
    checks: list[dict[str, Any]] = []
    for row in rows:
        for target in row["targets"]:
            if target.clients != row["wrk"].clients:
                continue
            value = target_value(target, row, rows)
            ok = target.met(value)
            checks.append(
                {
                    "scenario": f"{row['service']}.{row['scenario']}",
                    "target": target.describe(),
                    "value": value,
                    "ok": ok,
                }
            )
            colour = {True: "green", False: "red", None: "yellow"}[ok]
            verdict = {True: "ok", False: "MISSED", None: "no value"}[ok]
            console.print(f"[{colour}]{row['label']}: {target.describe()}: {_fmt(value, 2)} {verdict}[/{colour}]")
    for name, summary in profiles.items():
        _print_profile(name, summary)
    for failure in failures:
        console.print(f"[red]FAILED: {failure}[/red]")

    payload = {
        "benchmark": "http",
        "command": "python -m bench.http " + shlex.join(list(argv if argv is not None else sys.argv[1:])),
        "services": commands,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool) or v is None},
        "seeded": seeded,
        "seed_reused": reused,  # the seeded database of an earlier run, same code and sizes (seconds: then)
        "results": [
            {
                "service": r["service"],
                "scenario": r["scenario"],
                "label": r["label"],
                "clients": r["wrk"].clients,
                "ratio": None if r["ratio"] is None else round(r["ratio"], 3),
                "service_cpu_ms_per_request": round(
                    r["wrk"].server_cpu_pct / 100 * (psutil.cpu_count() or 1) / r["wrk"].rate * 1000, 3
                )
                if r["wrk"].rate
                else None,
                "wrk": _rounded(asdict(r["wrk"])),
                "alone": _rounded(asdict(r["alone"])) if r["alone"] else None,
                "pgbench": _rounded(asdict(r["pgbench"])) if r["pgbench"] else None,
            }
            for r in rows
        ],
        "checks": checks,
        "profiles": profiles,
        "failures": failures,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    out = args.output or DATA_DIR / "bench" / "http.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(_markdown(payload))
    err.print(f"wrote {out} ({payload['elapsed_s']} s in all)")
    return 1 if failures else 0


def _markdown(payload: dict[str, Any]) -> str:
    """The results as a Markdown table, for the README and docs/benchmarks.md."""
    lines = [
        f"`{payload['command']}`, {payload['finished_at']}, {payload['machine']['cpus']} CPUs",
        "",
        "| scenario | clients | req/s | p50 ms | p99 ms | pgbench TPS | pgbench p99 ms | ratio | wrk CPU "
        "| service CPU | postgres CPU | machine busy | service CPU ms/req | 1 conn p50 / p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["results"]:
        w, p, a = r["wrk"], r["pgbench"] or {}, r["alone"]
        alone = f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f}" if a else "–"
        lines.append(
            f"| {r['label']} | {r['clients']} | {w['rate']:,.0f} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} "
            f"| {p.get('rate', float('nan')):,.0f} | {p.get('p99_ms', float('nan')):.1f} | {_fmt(r['ratio'], 2)} "
            f"| {w['client_cpu_pct']:.1f} % | {w['server_cpu_pct']:.0f} % | {w['postgres_cpu_pct']:.0f} % "
            f"| {w['machine_busy_pct']:.0f} % | {_fmt(r['service_cpu_ms_per_request'], 2)} "
            f"| {alone} | {w['failures']} |"
        )
    lines.append("")
    for check in payload["checks"]:
        verdict = {True: "ok", False: "missed", None: "no value"}[check["ok"]]
        lines.append(f"- {check['scenario']}: {check['target']}: {_fmt(check['value'], 2)} ({verdict})")
    return "\n".join(lines) + "\n"


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in data.items()}


if __name__ == "__main__":
    sys.exit(main())
