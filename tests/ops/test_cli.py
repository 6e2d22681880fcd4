"""The operator's command line: provisioning a tenant on both services, and `ledger verify`."""

from __future__ import annotations

import asyncpg
import pytest

from ops.cli import main
from tests.conftest import run_blocking


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
