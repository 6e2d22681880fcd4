"""`python -m ops ...`: run, migrate, provision tenants, verify the ledger, run jobs, finance exports and
reports, regenerate the contracts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from rich.console import Console
from rich.table import Table

from ops import finance
from ops.database import DATA_DIR, PROJECT_DIR, resolve_database_url
from services.loyalty import app as loyalty_app
from services.referral import app as referral_app
from shared import migrations
from shared.db import create_pool
from shared.errors import DomainError
from shared.jobs import Job, JobResult, find_job, run_job
from shared.ledger import Check, verify
from shared.ledger.liability import LiabilitySpec
from shared.settings import Settings, load_settings
from shared.tenants import ApiKeyIn, TenantIn, issue_api_key, upsert_tenant

__all__ = ["main"]

SERVICES = {"loyalty": loyalty_app, "referral": referral_app}
console = Console(stderr=True)


def _services(name: str) -> list[str]:
    return list(SERVICES) if name == "all" else [name]


def migrate(url: str, services: Sequence[str] = tuple(SERVICES), revision: str = "head", down: bool = False) -> None:
    for name in services:
        module = SERVICES[name]
        if down:
            migrations.downgrade(module.MIGRATIONS, url, name, revision)
        else:
            migrations.upgrade(module.MIGRATIONS, url, name, revision)


async def _connect(url: str, service: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"search_path": service, "application_name": "ops"})


async def provision(
    url: str,
    tenant_id: str,
    tenant: TenantIn,
    keys: dict[str, list[str]],
    secrets_by_id: dict[str, str] | None = None,
) -> dict[str, str | None]:
    """Create the tenant on both services and issue each key (same secret on both); returns secrets."""
    secrets_by_id = dict(secrets_by_id or {})
    for key_id in keys:
        secrets_by_id.setdefault(key_id, "ak_" + secrets.token_urlsafe(32))
    shown: dict[str, str | None] = {}
    for service in SERVICES:
        conn = await _connect(url, service)
        try:
            async with conn.transaction():
                await upsert_tenant(conn, tenant_id, tenant)
                for key_id, scopes in keys.items():
                    issued, created = await issue_api_key(
                        conn,
                        tenant_id,
                        ApiKeyIn(key_id=key_id, scopes=scopes),
                        secrets_by_id[key_id],  # type: ignore[arg-type]
                    )
                    shown.setdefault(key_id, None)
                    if created:
                        shown[key_id] = issued.key
        finally:
            await conn.close()
    return shown


async def verify_ledgers(url: str, services: Sequence[str], tenant_id: str | None) -> bool:
    ok = True
    for service in services:
        conn = await _connect(url, service)
        try:
            # The service's own checks too (lots, commission states), as its endpoint and job run them.
            report = await verify(conn, tenant_id, service_checks(service))
        finally:
            await conn.close()
        table = Table(title=f"{service}: {len(report.checks)} checks, {len(report.violations)} violations")
        for column in ("invariant", "tenant", "subject", "detail"):
            table.add_column(column)
        for v in report.violations:
            table.add_row(v.invariant, v.tenant_id or "", v.subject, v.detail)
        console.print(table if report.violations else table.title)
        ok = ok and report.ok
    return ok


def service_checks(service: str) -> tuple[Check, ...]:
    checks: tuple[Check, ...] = (
        SERVICES[service].create_app(load_settings(service, "postgresql://unused")).state.verify_checks
    )
    return checks


def service_liability(service: str) -> LiabilitySpec:
    """The liability spec the service's app registers (its categories and kind → line table)."""
    spec: LiabilitySpec = SERVICES[service].create_app(load_settings(service, "postgresql://unused")).state.liability
    return spec


def service_jobs(service: str, settings: Settings) -> tuple[Job, ...]:
    """The jobs the service's app registers (its own and the kernel's), so a new job needs no CLI change."""
    jobs: tuple[Job, ...] = SERVICES[service].create_app(settings).state.jobs
    return jobs


def list_jobs(service: str) -> None:
    """One line per job: name, scheduler interval in seconds, description (tab-separated)."""
    for job in service_jobs(service, load_settings(service, "postgresql://unused")):
        print(f"{job.name}\t{job.interval_seconds:g}\t{job.description}")


async def run_named_job(
    settings: Settings,
    job: Job,
    *,
    tenant_id: str | None,
    as_of: datetime | None,
    batch_size: int,
    max_batches: int | None,
) -> JobResult:
    pool = await create_pool(settings, min_size=1, max_size=4)
    try:
        return await run_job(
            pool,
            job,
            settings,
            tenant_id=tenant_id,
            as_of=as_of,
            batch_size=batch_size,
            max_batches=max_batches,
            trigger="cli",
        )
    finally:
        await pool.close()


def _print_result(result: JobResult, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(result).decode())
        return
    table = Table(title=f"{result.job}: {result.status}")
    table.add_column("field")
    table.add_column("value")
    for field in result.__struct_fields__:
        value = getattr(result, field)
        table.add_row(field, "all tenants" if field == "tenant_id" and value is None else str(value))
    console.print(table)


def _rfc3339(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset (e.g. 2025-01-31T16:00:00+08:00)")
    return parsed


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer from 1 to 1000000")
    return number


def openapi_text(service: str) -> str:
    """The contract of one service as committed in openapi/<service>.json (no database needed)."""
    app = SERVICES[service].create_app(load_settings(service, "postgresql://unused"))
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


def write_openapi(check: bool) -> bool:
    """Write openapi/<service>.json from the apps; with check, report drift instead."""
    drift = False
    for name in SERVICES:
        text = openapi_text(name)
        path = PROJECT_DIR / "openapi" / f"{name}.json"
        if check:
            if not path.exists() or path.read_text() != text:
                console.print(f"[red]{path} differs from the code: run `make openapi`[/red]")
                drift = True
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            console.print(f"wrote {path}")
    return not drift


def _operator_token() -> str:
    token = os.environ.get("OPERATOR_TOKEN")
    if token:
        return token
    path = DATA_DIR / "operator_token"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text("op_" + secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


_DEMO_KEYS = {"demo-admin": ["admin", "client"], "demo-client": ["client"]}


def _demo_keys(url: str) -> dict[str, str]:
    """Provision `demo`; its keys are kept in the data folder so a second run can show them again."""
    path = DATA_DIR / "demo_keys.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    shown = asyncio.run(provision(url, "demo", TenantIn(name="Demo shop"), _DEMO_KEYS, known))
    for key_id, key in shown.items():
        if key:
            known[key_id] = key
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return known


def run(host: str, ports: dict[str, int]) -> int:
    url, server = resolve_database_url()
    console.print(f"database: {'embedded, data in ' + str(server.pgdata) if server else 'DATABASE_URL'}")
    migrate(url)
    token = _operator_token()
    keys = _demo_keys(url)
    env = {**os.environ, "DATABASE_URL": url, "OPERATOR_TOKEN": token}
    children: list[subprocess.Popen[bytes]] = []
    for name, port in ports.items():
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"services.{name}.app:create_app_from_env",
            "--host",
            host,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        # Own session: a terminal's Ctrl-C reaches this runner only, which forwards one SIGINT
        # (a second one would make uvicorn abandon its graceful shutdown).
        children.append(subprocess.Popen(cmd, env=env, cwd=PROJECT_DIR, start_new_session=True))

    table = Table(title="loyalty + referral are running (Ctrl-C stops both and the database)")
    table.add_column("what")
    table.add_column("value")
    for name, port in ports.items():
        table.add_row(f"{name} API", f"http://{host}:{port}/v1")
        table.add_row(f"{name} API docs", f"http://{host}:{port}/docs  (Swagger: /docs/swagger)")
    table.add_row("tenant", "demo")
    for key_id, key in keys.items():
        table.add_row(f"{key_id} key", key)
    table.add_row("operator token", token)
    table.add_row("database", url)
    console.print(table)

    def _stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        console.print("[red]a service exited; stopping[/red]")
        code = 1
    except KeyboardInterrupt:
        code = 0
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    console.print("stopped")
    return code  # the embedded server stops at interpreter exit, with its last user


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="migrate, provision `demo`, serve both services until Ctrl-C")
    p_run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p_run.add_argument("--loyalty-port", type=int, default=int(os.environ.get("LOYALTY_PORT", 8001)))
    p_run.add_argument("--referral-port", type=int, default=int(os.environ.get("REFERRAL_PORT", 8002)))

    p_mig = sub.add_parser("migrate", help="apply (or roll back) the services' migrations")
    p_mig.add_argument("--service", choices=["all", *SERVICES], default="all")
    p_mig.add_argument("--revision", default=None, help="target revision (default head, or base with --down)")
    p_mig.add_argument("--down", action="store_true")

    p_prov = sub.add_parser("provision", help="create or update a tenant on both services and issue keys")
    p_prov.add_argument("tenant_id")
    p_prov.add_argument("--name", default=None)
    p_prov.add_argument("--timezone", default="Asia/Shanghai")
    p_prov.add_argument("--currency", default="CNY")
    p_prov.add_argument("--admin-key-id", default="admin")
    p_prov.add_argument("--client-key-id", default="client")

    p_ledger = sub.add_parser("ledger", help="ledger commands")
    ledger_sub = p_ledger.add_subparsers(dest="ledger_command", required=True)
    p_verify = ledger_sub.add_parser("verify", help="check every invariant; exit 1 on any violation")
    p_verify.add_argument("--service", choices=["all", *SERVICES], default="all")
    p_verify.add_argument("--tenant", default=None)

    p_jobs = sub.add_parser("jobs", help="scheduled jobs (§8): list them, or run one now")
    jobs_sub = p_jobs.add_subparsers(dest="jobs_command", required=True)
    p_jobs_list = jobs_sub.add_parser("list", help="the jobs a service runs")
    p_jobs_list.add_argument("--service", choices=list(SERVICES), required=True)
    p_jobs_run = jobs_sub.add_parser(
        "run", help="run a job until nothing is due (idempotent); exit 1 when another run holds it"
    )
    p_jobs_run.add_argument("name")
    p_jobs_run.add_argument("--service", choices=list(SERVICES), required=True)
    p_jobs_run.add_argument("--tenant", default=None, help="one tenant (default: every tenant)")
    p_jobs_run.add_argument("--as-of", type=_rfc3339, default=None, help="RFC 3339 time with offset (default now)")
    p_jobs_run.add_argument("--batch-size", type=_positive, default=500, help="items per transaction")
    p_jobs_run.add_argument("--max-batches", type=_positive, default=None, help="stop after this many batches")
    p_jobs_run.add_argument("--json", action="store_true", help="print the result as one JSON line on stdout")

    finance.add_parsers(sub, list(SERVICES), _rfc3339)

    p_api = sub.add_parser("openapi", help="write openapi/*.json from the code")
    p_api.add_argument("--check", action="store_true", help="exit 1 when the committed files differ")

    args = parser.parse_args(argv)
    if args.command == "openapi":
        return 0 if write_openapi(args.check) else 1
    if args.command == "run":
        return run(args.host, {"loyalty": args.loyalty_port, "referral": args.referral_port})
    if args.command == "jobs" and args.jobs_command == "list":
        list_jobs(args.service)
        return 0

    url, _server = resolve_database_url()
    if args.command == "migrate":
        revision = args.revision or ("base" if args.down else "head")
        migrate(url, _services(args.service), revision, args.down)
        return 0
    if args.command == "provision":
        tenant = TenantIn(name=args.name or args.tenant_id, timezone=args.timezone, currency=args.currency)
        try:
            tenant = msgspec.convert(msgspec.to_builtins(tenant), TenantIn)
        except msgspec.ValidationError as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
        migrate(url)
        keys = {args.admin_key_id: ["admin", "client"], args.client_key_id: ["client"]}
        try:
            shown = asyncio.run(provision(url, args.tenant_id, tenant, keys))
        except DomainError as refusal:
            console.print(f"[red]{refusal.type}: {refusal.detail}[/red]")
            return 2
        for key_id, key in shown.items():
            print(f"{key_id}\t{key or '(exists; the secret was shown when it was issued)'}")
        return 0
    if args.command == "ledger":
        return 0 if asyncio.run(verify_ledgers(url, _services(args.service), args.tenant)) else 1
    if args.command == "jobs":
        return _run_job_command(url, args)
    if args.command in ("export", "trial-balance", "statement", "liability"):
        if args.command == "liability":
            args.spec = service_liability(args.service)
        return finance.run_finance_command(_connect, url, args)
    return 2


def _run_job_command(url: str, args: argparse.Namespace) -> int:
    settings = load_settings(args.service, url)
    try:
        job = find_job(service_jobs(args.service, settings), args.name)
    except DomainError as refusal:
        console.print(f"[red]{refusal.type}: {refusal.detail}[/red]")
        return 2
    # The app factory configured logs on stdout; here stdout is the result's, so logs go to stderr.
    # Resolved at each call (loggers are not cached), so it is always the current stderr.
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    result = asyncio.run(
        run_named_job(
            settings,
            job,
            tenant_id=args.tenant,
            as_of=args.as_of,
            batch_size=args.batch_size,
            max_batches=args.max_batches,
        )
    )
    _print_result(result, args.json)
    if result.status == "skipped":
        console.print(f"[yellow]{job.name} is already running for this scope elsewhere; nothing was done[/yellow]")
        return 1
    return 0
