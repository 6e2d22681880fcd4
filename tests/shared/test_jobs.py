"""Jobs (§8): `POST /v1/jobs/{name}`, one run per (job, tenant) at a time, runs stopped early and
resumed, `job_runs`, and the in-process scheduler. The job under test is the kernel's own
`deliver-webhooks`, observed from a real HTTP receiver; a few jobs exist only in this test."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from ops.cli import migrate
from shared.app import create_service_app
from shared.db import create_pool
from shared.events import emit, verify_signature
from shared.jobs import Job, JobContext, run_job, transactional
from tests.conftest import TenantKeys, serve, settings_for
from tests.shared.test_webhooks import SECRET, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


async def subscribe(client: httpx.AsyncClient, tenant: TenantKeys, url: str) -> None:
    body = {"url": url, "secret": SECRET}
    assert (await client.put("/v1/webhooks/wh", json=body, headers=tenant.admin)).status_code == 201


async def emit_events(pool: asyncpg.Pool, tenant_id: str, count: int) -> list[str]:
    """Business writes, each in its own transaction, each with its event."""
    ids = []
    for n in range(count):
        async with pool.acquire() as conn, conn.transaction():
            ids.append(await emit(conn, tenant_id, "points.earned", {"n": n}))
    return ids


def soon() -> str:
    return (datetime.now(UTC) + timedelta(seconds=1)).isoformat()


async def job_runs(pool: asyncpg.Pool, job: str, tenant_id: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT trigger, status, processed, batches, error, as_of, finished_at IS NOT NULL AS finished
                 FROM job_runs WHERE job = $1 AND tenant_id = $2 ORDER BY run_id""",
            job,
            tenant_id,
        )
    return [dict(r) for r in rows]


# --- the HTTP endpoint -----------------------------------------------------------------------------


async def test_jobs_are_listed_for_admins(loyalty_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    listed = await loyalty_client.get("/v1/jobs", headers=tenant.admin)
    assert listed.status_code == 200
    assert {"name": "deliver-webhooks", "interval_seconds": 5.0} in [
        {k: j[k] for k in ("name", "interval_seconds")} for j in listed.json()
    ]
    assert (await loyalty_client.get("/v1/jobs", headers=tenant.client)).status_code == 403


async def test_an_admin_runs_a_job_for_the_keys_tenant_only(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await subscribe(loyalty_client, tenant, receiver.url)
    [event_id] = await emit_events(loyalty_pool, tenant.tenant_id, 1)
    as_of = soon()

    response = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={"as_of": as_of}, headers=tenant.admin)

    assert response.status_code == 200, response.text
    result = response.json()
    assert {k: result[k] for k in ("job", "tenant_id", "status", "processed", "batches")} == {
        "job": "deliver-webhooks",
        "tenant_id": tenant.tenant_id,
        "status": "completed",
        "processed": 1,
        "batches": 1,
    }
    assert datetime.fromisoformat(result["as_of"]) == datetime.fromisoformat(as_of)
    assert isinstance(result["run_id"], int)
    assert receiver.event_ids() == [event_id]
    assert verify_signature(SECRET, receiver.requests[0].headers, receiver.requests[0].body) == event_id
    [run] = await job_runs(loyalty_pool, "deliver-webhooks", tenant.tenant_id)
    assert (run["trigger"], run["status"], run["processed"], run["batches"], run["finished"]) == (
        "http",
        "completed",
        1,
        1,
        True,
    )

    # Idempotent: running it again does nothing.
    again = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={}, headers=tenant.admin)
    assert (again.status_code, again.json()["processed"]) == (200, 0)
    assert len(receiver.requests) == 1


async def test_job_refusals(loyalty_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    client_key = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={}, headers=tenant.client)
    unknown = await loyalty_client.post("/v1/jobs/make-coffee", json={}, headers=tenant.admin)
    naive = await loyalty_client.post(
        "/v1/jobs/deliver-webhooks", json={"as_of": "2030-01-01T00:00:00"}, headers=tenant.admin
    )
    zero = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={"batch_size": 0}, headers=tenant.admin)
    anonymous = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={})
    assert (client_key.status_code, client_key.json()["type"]) == (403, "forbidden")
    assert (unknown.status_code, unknown.json()["type"]) == (404, "job-not-found")
    assert "deliver-webhooks" in unknown.json()["detail"]
    assert naive.status_code == 400 and "timezone" in naive.text
    assert zero.status_code == 400
    assert anonymous.status_code == 401


async def test_a_second_run_of_the_same_job_for_the_same_tenant_is_409(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, database_url: str
) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        await holder.fetchval(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"loyalty:deliver-webhooks:{tenant.tenant_id}"
        )
        busy = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={}, headers=tenant.admin)
        assert (busy.status_code, busy.json()["type"]) == (409, "job-running")
    finally:
        await holder.close()  # ends the session, so releases its lock
    free = await loyalty_client.post("/v1/jobs/deliver-webhooks", json={}, headers=tenant.admin)
    assert (free.status_code, free.json()["status"]) == (200, "completed")
    # The refused run left no trace; the one that ran did.
    assert [r["status"] for r in await job_runs(loyalty_pool, "deliver-webhooks", tenant.tenant_id)] == ["completed"]
    metrics = (await loyalty_client.get("/metrics")).text
    assert 'job_runs_total{job="deliver-webhooks",status="skipped"}' in metrics


async def test_two_concurrent_runs_one_runs_and_one_is_refused(
    tenant: TenantKeys, loyalty_pool: asyncpg.Pool, database_url: str
) -> None:
    batches_begun, release = asyncio.Semaphore(0), asyncio.Event()

    async def slow(pool: asyncpg.Pool, ctx: JobContext) -> int:
        batches_begun.release()
        await release.wait()
        return 0

    job = Job(name="slow-test-job", description="waits", batch=slow)
    settings = settings_for("loyalty", database_url)
    first = asyncio.create_task(run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, trigger="test"))
    await batches_begun.acquire()
    second = await run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, trigger="test")
    assert (second.status, second.processed, second.run_id) == ("skipped", 0, None)
    # The same job for another tenant is not held back.
    elsewhere = asyncio.create_task(
        run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id + "-b", trigger="test")
    )
    await asyncio.wait_for(batches_begun.acquire(), 5)
    release.set()
    assert (await first).status == (await elsewhere).status == "completed"
    assert [r["status"] for r in await job_runs(loyalty_pool, "slow-test-job", tenant.tenant_id)] == ["completed"]


# --- batches, stops and resumption -----------------------------------------------------------------


async def test_max_batches_stops_early_and_the_next_run_finishes_the_rest(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await subscribe(loyalty_client, tenant, receiver.url)
    events = await emit_events(loyalty_pool, tenant.tenant_id, 5)
    as_of = soon()

    stopped = await loyalty_client.post(
        "/v1/jobs/deliver-webhooks", json={"as_of": as_of, "batch_size": 1, "max_batches": 2}, headers=tenant.admin
    )
    assert stopped.status_code == 200
    assert {k: stopped.json()[k] for k in ("status", "processed", "batches")} == {
        "status": "stopped",
        "processed": 2,
        "batches": 2,
    }
    assert len(receiver.event_ids()) == 2

    rest = await loyalty_client.post(
        "/v1/jobs/deliver-webhooks", json={"as_of": as_of, "batch_size": 1}, headers=tenant.admin
    )
    # Three full batches, then an empty one that shows nothing is due.
    assert {k: rest.json()[k] for k in ("status", "processed", "batches")} == {
        "status": "completed",
        "processed": 3,
        "batches": 4,
    }
    assert sorted(receiver.event_ids()) == sorted(events)
    assert len(receiver.requests) == 5  # each event once: nothing sent twice, nothing skipped
    runs = await job_runs(loyalty_pool, "deliver-webhooks", tenant.tenant_id)
    assert [(r["status"], r["processed"], r["batches"], r["error"]) for r in runs] == [
        ("stopped", 2, 2, None),
        ("completed", 3, 4, None),
    ]
    assert {r["as_of"] for r in runs} == {datetime.fromisoformat(as_of)}
    metrics = (await loyalty_client.get("/metrics")).text
    assert 'job_runs_total{job="deliver-webhooks",status="stopped"}' in metrics
    assert 'job_items_processed_total{job="deliver-webhooks"}' in metrics


async def test_a_failing_batch_is_recorded_and_releases_the_lock(
    tenant: TenantKeys, loyalty_pool: asyncpg.Pool, database_url: str
) -> None:
    calls = itertools.count()

    async def flaky(pool: asyncpg.Pool, ctx: JobContext) -> int:
        if next(calls) == 1:
            raise RuntimeError("the second batch breaks")
        return ctx.batch_size

    job = Job(name="flaky-test-job", description="fails once", batch=flaky)
    settings = settings_for("loyalty", database_url)
    with pytest.raises(RuntimeError, match="second batch"):
        await run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, batch_size=10, trigger="test")
    # The lock was released: the next run is not skipped.
    resumed = await run_job(
        loyalty_pool, job, settings, tenant_id=tenant.tenant_id, batch_size=10, max_batches=1, trigger="test"
    )
    assert (resumed.status, resumed.processed) == ("stopped", 10)
    runs = await job_runs(loyalty_pool, "flaky-test-job", tenant.tenant_id)
    assert [(r["trigger"], r["status"], r["processed"], r["batches"]) for r in runs] == [
        ("test", "failed", 10, 1),
        ("test", "stopped", 10, 1),
    ]
    assert "the second batch breaks" in runs[0]["error"] and runs[0]["finished"]


async def test_a_transactional_batch_commits_or_rolls_back_as_one(
    tenant: TenantKeys, loyalty_pool: asyncpg.Pool, database_url: str
) -> None:
    @transactional
    async def emit_then_maybe_fail(conn: asyncpg.Connection, ctx: JobContext) -> int:
        assert conn.is_in_transaction()
        await emit(conn, ctx.tenant_id or "", "job.ran", {"as_of": ctx.as_of.isoformat()})
        if ctx.batch_size == 2:
            raise RuntimeError("after the write")
        return 0

    job = Job(name="emit-test-job", description="", batch=emit_then_maybe_fail)
    settings = settings_for("loyalty", database_url)
    await run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, batch_size=1, trigger="test")
    with pytest.raises(RuntimeError):
        await run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, batch_size=2, trigger="test")
    async with loyalty_pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.tenant_id)
    assert count == 1


# --- the scheduler ---------------------------------------------------------------------------------


@pytest.fixture
def scheduler_database(fresh_database: Any) -> str:
    """A database of its own: the scheduler runs jobs for every tenant, and must not touch other tests'."""
    url: str = fresh_database()
    migrate(url, ["loyalty"])
    return url


async def test_the_scheduler_runs_jobs_on_their_interval_and_stops_at_shutdown(
    scheduler_database: str, receiver: Receiver
) -> None:
    settings = settings_for("loyalty", scheduler_database, scheduler_enabled=True, scheduler_tick_seconds=0.02)
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('s', 's')")
            await conn.execute(
                "INSERT INTO webhooks (tenant_id, webhook_id, url, secret) VALUES ('s', 'wh', $1, $2)",
                receiver.url,
                SECRET,
            )
        [event_id] = await emit_events(pool, "s", 1)
        ticks: list[float] = []

        async def tick(pool: asyncpg.Pool, ctx: JobContext) -> int:
            ticks.append(time.monotonic())
            return 0

        ticker = Job(name="tick-test-job", description="counts its runs", batch=tick, interval_seconds=0.1)
        app = create_service_app(settings, title="t", description="t", jobs=[ticker])
        async with serve(app):
            started = time.monotonic()
            for _ in range(1500):  # at most 30 s on a loaded machine
                if len(ticks) >= 4 and receiver.requests:
                    break
                await asyncio.sleep(0.02)
            assert [t.get_name() for t in asyncio.all_tasks()].count("job-scheduler") == 1
            elapsed, ran = time.monotonic() - started, len(ticks)
        assert receiver.event_ids() == [event_id]
        # On its interval (0.1 s), not on every tick (0.02 s).
        assert 4 <= ran <= elapsed / 0.1 + 2
        # Stopped with the app: no scheduler task left, and no run stays "running".
        assert "job-scheduler" not in [t.get_name() for t in asyncio.all_tasks()]
        count = len(ticks)
        await asyncio.sleep(0.3)
        assert len(ticks) == count
        async with pool.acquire() as conn:
            runs = await conn.fetch("SELECT job, trigger, status, tenant_id FROM job_runs")
        assert {(r["job"], r["trigger"], r["tenant_id"]) for r in runs} == {
            ("tick-test-job", "scheduler", None),
            ("deliver-webhooks", "scheduler", None),
            ("verify-ledger", "scheduler", None),  # the kernel's nightly job runs once at start-up too
        }
        assert "running" not in {r["status"] for r in runs}
        assert ("deliver-webhooks", "completed") in {(r["job"], r["status"]) for r in runs}
    finally:
        await pool.close()


async def test_a_shutdown_in_the_middle_of_a_run_records_it_as_stopped(
    tenant: TenantKeys, loyalty_pool: asyncpg.Pool, database_url: str
) -> None:
    entered = asyncio.Event()

    async def forever(pool: asyncpg.Pool, ctx: JobContext) -> int:
        entered.set()
        await asyncio.Event().wait()
        return 0

    job = Job(name="endless-test-job", description="", batch=forever)
    settings = settings_for("loyalty", database_url)
    running = asyncio.create_task(run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, trigger="test"))
    await entered.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    [run] = await job_runs(loyalty_pool, "endless-test-job", tenant.tenant_id)
    assert (run["status"], run["batches"], run["finished"]) == ("stopped", 0, True)
    # And the lock went with it.
    again = asyncio.create_task(run_job(loyalty_pool, job, settings, tenant_id=tenant.tenant_id, trigger="test"))
    await asyncio.sleep(0.2)
    assert not again.done()  # it runs (it would return "skipped" at once if the lock were still held)
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again
