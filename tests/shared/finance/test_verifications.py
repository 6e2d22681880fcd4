"""The nightly verify-ledger job: one recorded result per tenant and run, at the endpoint and in metrics."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx

from shared.finance.verifications import VERIFY_LEDGER_NAME, verify_ledger_job
from shared.jobs import find_job, run_job
from tests.conftest import TenantKeys, settings_for
from tests.shared.finance.conftest import Books


async def test_the_job_records_a_passing_verification_once_per_as_of(books: Books, database_url: str) -> None:
    await books.earn(await books.member("alice"), 10)
    missing = await books.get("/v1/ledger/verifications/latest")
    assert missing.status_code == 404 and missing.json()["type"] == "verification-not-found"

    settings = settings_for("loyalty", database_url)
    job = verify_ledger_job(())
    as_of = await books.now()
    first = await run_job(books.pool, job, settings, tenant_id=books.tenant_id, as_of=as_of, trigger="test")
    assert (first.status, first.processed) == ("completed", 1)
    again = await run_job(books.pool, job, settings, tenant_id=books.tenant_id, as_of=as_of, trigger="test")
    assert again.processed == 0  # already verified as of then: a re-run does nothing
    earlier = await run_job(
        books.pool, job, settings, tenant_id=books.tenant_id, as_of=as_of - timedelta(hours=1), trigger="test"
    )
    assert earlier.processed == 0

    latest = (await books.get("/v1/ledger/verifications/latest")).json()
    assert latest["ok"] is True and latest["violation_count"] == 0 and latest["violations"] == []
    assert "2-trial-balance" in latest["checks"] and latest["checked_at"] >= latest["as_of"]


async def test_the_service_registers_the_job_with_its_own_checks(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    listed = (await loyalty_client.get("/v1/jobs", headers=tenant.admin)).json()
    assert VERIFY_LEDGER_NAME in [j["name"] for j in listed]
    ran = await loyalty_client.post(f"/v1/jobs/{VERIFY_LEDGER_NAME}", json={}, headers=tenant.admin)
    assert ran.status_code == 200 and ran.json()["processed"] == 1
    latest = (await loyalty_client.get("/v1/ledger/verifications/latest", headers=tenant.admin)).json()
    assert latest["ok"] is True
    assert any(check.startswith("5") for check in latest["checks"])  # loyalty's lot invariant ran too
    metrics = (await loyalty_client.get("/metrics")).text
    assert 'ledger_verification_failing_tenants{service="loyalty"}' in metrics
    assert 'ledger_verifications_total{result="ok",service="loyalty"}' in metrics


async def test_a_violation_is_recorded_with_its_detail(
    loyalty_pool: asyncpg.Pool, loyalty_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    async with loyalty_pool.acquire() as conn, conn.transaction():
        # Forge a counter the way only a superuser bypassing the guards could (§4.3 item 3).
        await conn.execute(
            "INSERT INTO accounts (tenant_id, code, asset) VALUES ($1, 'member:x:points', 'PTS')", tenant.tenant_id
        )
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE accounts SET credits_posted = 5 WHERE tenant_id = $1", tenant.tenant_id)
    settings = settings_for("loyalty", database_url)
    jobs = loyalty_client._transport.app.state.jobs  # type: ignore[attr-defined]
    result = await run_job(
        loyalty_pool, find_job(jobs, VERIFY_LEDGER_NAME), settings, tenant_id=tenant.tenant_id, trigger="test"
    )
    assert result.processed == 1
    latest = (await loyalty_client.get("/v1/ledger/verifications/latest", headers=tenant.admin)).json()
    assert latest["ok"] is False and latest["violation_count"] >= 1
    assert any(
        v["invariant"] == "3-counters-equal-postings" and "member:x:points" in v["subject"]
        for v in latest["violations"]
    )
    metrics = (await loyalty_client.get("/metrics")).text
    failing = [
        line
        for line in metrics.splitlines()
        if line.startswith('ledger_verification_failing_tenants{service="loyalty"}')
    ]
    assert failing and float(failing[0].split()[-1]) >= 1
