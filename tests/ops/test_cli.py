"""The operator's command line: provisioning a tenant on both services, `ledger verify`, `jobs`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ops.cli import SERVICES, main
from ops.database import PROJECT_DIR
from shared.db import create_pool
from shared.events import emit, verify_signature
from shared.settings import load_settings
from tests.conftest import run_blocking, settings_for
from tests.shared.test_webhooks import SECRET, Receiver


def test_provision_creates_the_tenant_on_both_services_with_working_keys(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["provision", "cli-shop", "--name", "CLI Shop", "--timezone", "Europe/Paris"]) == 0
    keys = dict(line.split("\t") for line in capsys.readouterr().out.strip().splitlines())
    assert keys["admin"].startswith("ak_") and keys["client"].startswith("ak_")

    async def check() -> list[tuple[str, str, list[str]]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = []
            for schema in ("loyalty", "referral"):
                row = await conn.fetchrow(
                    f"""SELECT t.timezone, t.name, array_agg(k.key_id ORDER BY k.key_id) AS keys
                          FROM {schema}.tenants t JOIN {schema}.api_keys k USING (tenant_id)
                         WHERE t.tenant_id = 'cli-shop' GROUP BY t.tenant_id"""
                )
                rows.append((row["timezone"], row["name"], row["keys"]))
            return rows
        finally:
            await conn.close()

    assert run_blocking(check()) == [("Europe/Paris", "CLI Shop", ["admin", "client"])] * 2
    # Provisioning again changes nothing and does not show the secrets again.
    assert main(["provision", "cli-shop", "--name", "CLI Shop", "--timezone", "Europe/Paris"]) == 0
    assert "ak_" not in capsys.readouterr().out


def test_provision_refuses_an_unknown_timezone(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["provision", "tz-shop", "--timezone", "Nowhere/Land"]) == 2


def test_ledger_verify_exits_non_zero_on_a_violation(fresh_database, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 0
    assert main(["ledger", "verify"]) == 0

    async def tamper() -> None:
        conn = await asyncpg.connect(url, server_settings={"search_path": "referral"})
        try:
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('v', 'v')")
            await conn.execute("INSERT INTO accounts (tenant_id, code, asset) VALUES ('v', 'member:1:x', 'CNY')")
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute("UPDATE accounts SET credits_posted = 5 WHERE tenant_id = 'v'")
        finally:
            await conn.close()

    run_blocking(tamper())
    assert main(["ledger", "verify", "--service", "loyalty"]) == 0
    assert main(["ledger", "verify"]) == 1
    assert main(["ledger", "verify", "--tenant", "other"]) == 0


# --- jobs ------------------------------------------------------------------------------------------


def _loyalty_tenant_with_an_event(database_url: str, tenant_id: str, webhook_url: str) -> str:
    """A tenant subscribed to every event, and one business write's event waiting for delivery."""

    async def setup() -> str:
        pool = await create_pool(settings_for("loyalty", database_url), min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant_id)
                await conn.execute(
                    "INSERT INTO webhooks (tenant_id, webhook_id, url, secret) VALUES ($1, 'wh', $2, $3)",
                    tenant_id,
                    webhook_url,
                    SECRET,
                )
                event_id: str = await emit(conn, tenant_id, "points.earned", {"points": 5})
            return event_id
        finally:
            await pool.close()

    result: str = run_blocking(setup())
    return result


def _job_runs(database_url: str, tenant_id: str) -> list[tuple[str, str, int]]:
    async def fetch() -> list[tuple[str, str, int]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT trigger, status, processed FROM loyalty.job_runs WHERE tenant_id = $1 ORDER BY run_id",
                tenant_id,
            )
        finally:
            await conn.close()
        return [(r["trigger"], r["status"], r["processed"]) for r in rows]

    result: list[tuple[str, str, int]] = run_blocking(fetch())
    return result


def test_jobs_list_shows_what_the_services_app_registers(capsys: pytest.CaptureFixture[str]) -> None:
    for service in SERVICES:
        assert main(["jobs", "list", "--service", service]) == 0
        lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
        registered = SERVICES[service].create_app(load_settings(service, "postgresql://unused")).state.jobs
        assert [line[0] for line in lines] == [job.name for job in registered]
        assert ["deliver-webhooks", "5"] in [line[:2] for line in lines]


def test_jobs_run_delivers_due_webhooks_from_the_command_line(database_url: str) -> None:
    tenant_id = "cli-jobs-" + uuid.uuid4().hex[:8]
    with Receiver() as receiver:
        event_id = _loyalty_tenant_with_an_event(database_url, tenant_id, receiver.url)
        as_of = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        command = [sys.executable, "-m", "ops", "jobs", "run", "deliver-webhooks", "--service", "loyalty"]
        command += ["--tenant", tenant_id, "--as-of", as_of]
        env = {**os.environ, "DATABASE_URL": database_url, "LOG_JSON": "true"}

        done = subprocess.run(
            [*command, "--json"], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
        )

        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)  # stdout is the result alone; logs went to stderr
        assert {k: result[k] for k in ("job", "tenant_id", "status", "processed")} == {
            "job": "deliver-webhooks",
            "tenant_id": tenant_id,
            "status": "completed",
            "processed": 1,
        }
        assert datetime.fromisoformat(result["as_of"]) == datetime.fromisoformat(as_of)
        assert receiver.event_ids() == [event_id]
        assert verify_signature(SECRET, receiver.requests[0].headers, receiver.requests[0].body) == event_id

        # Again: nothing is due, nothing is sent; the human-readable table goes to the console.
        again = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        assert "deliver-webhooks: completed" in again.stderr and "processed" in again.stderr
        assert len(receiver.requests) == 1
    assert _job_runs(database_url, tenant_id) == [("cli", "completed", 1), ("cli", "completed", 0)]


def test_jobs_run_refuses_an_unknown_job_and_bad_options(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["jobs", "run", "make-coffee", "--service", "loyalty"]) == 2
    err = capsys.readouterr().err
    assert "job-not-found" in err and "deliver-webhooks" in err
    for bad in (
        ["--as-of", "2030-01-01T00:00:00"],  # no offset
        ["--as-of", "tomorrow"],
        ["--batch-size", "0"],
        ["--max-batches", "-1"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(["jobs", "run", "deliver-webhooks", "--service", "loyalty", *bad])
        assert exited.value.code == 2
    with pytest.raises(SystemExit):
        main(["jobs", "run", "deliver-webhooks", "--service", "billing"])


def test_jobs_run_exits_1_when_another_run_holds_the_job(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_id = "cli-busy-" + uuid.uuid4().hex[:8]
    holding, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"loyalty:deliver-webhooks:{tenant_id}"
            )
            holding.set()
            await asyncio.to_thread(release.wait, 30)
        finally:
            await conn.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert holding.wait(10)
        monkeypatch.setenv("DATABASE_URL", database_url)
        assert main(["jobs", "run", "deliver-webhooks", "--service", "loyalty", "--tenant", tenant_id]) == 1
        assert "already running" in capsys.readouterr().err
    finally:
        release.set()
        holder.join(10)
    assert main(["jobs", "run", "deliver-webhooks", "--service", "loyalty", "--tenant", tenant_id]) == 0
    assert _job_runs(database_url, tenant_id) == [("cli", "completed", 0)]
