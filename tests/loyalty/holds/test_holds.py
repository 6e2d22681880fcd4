"""Holds (§5.8): points reserved at checkout from the first-expiring lots, then captured (in part: the
first-expiring points are the spent ones), voided, or expired by the job; a hold resolves at most once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, earn, put_member

NOW = datetime.now(UTC)
EARNED = NOW - timedelta(days=1)
SOON, LATER = NOW + timedelta(days=10), NOW + timedelta(days=40)


async def give(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int, expires: datetime | None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await earn(conn, tenant.tenant_id, member_id, points, EARNED, expires)


async def hold(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, hold_id: str, points: int, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/members/{member_id}/holds",
        json={"hold_id": hold_id, "points": points, "order_ref": f"order-{hold_id}"} | extra,
        headers=tenant.client,
    )


async def capture(client: httpx.AsyncClient, tenant: TenantKeys, hold_id: str, points: int) -> httpx.Response:
    return await client.post(f"/v1/holds/{hold_id}/capture", json={"points": points}, headers=tenant.client)


async def void(client: httpx.AsyncClient, tenant: TenantKeys, hold_id: str) -> httpx.Response:
    return await client.post(f"/v1/holds/{hold_id}/void", json={}, headers=tenant.client)


async def balances(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, int]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()["balances"]


async def expire_holds(client: httpx.AsyncClient, tenant: TenantKeys, **options: Any) -> dict[str, Any]:
    response = await client.post("/v1/jobs/expire-holds", json=options, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def lots(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str) -> dict[int, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT lot_id, remaining FROM lots WHERE tenant_id = $1 AND member_id = $2", tenant.tenant_id, member_id
        )
    return {r["lot_id"]: r["remaining"] for r in rows}


async def entries(pool: asyncpg.Pool, tenant: TenantKeys, kind: str) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM entries WHERE tenant_id = $1 AND kind = $2", tenant.tenant_id, kind
            )
        )


async def events(pool: asyncpg.Pool, tenant: TenantKeys, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY event_id", tenant.tenant_id, event_type
        )
    return [r["data"] for r in rows]


async def test_a_partial_capture_spends_the_first_expiring_points_and_gives_back_the_rest(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    late = await give(loyalty_pool, tenant, "m1", 100, LATER)
    soon = await give(loyalty_pool, tenant, "m1", 50, SOON)
    forever = await give(loyalty_pool, tenant, "m1", 20, None)

    held = await hold(loyalty_client, tenant, "m1", "h1", 100)
    assert held.status_code == 201, held.text
    assert {k: held.json()[k] for k in ("status", "points", "captured_points", "released_points", "order_ref")} == {
        "status": "held",
        "points": 100,
        "captured_points": 0,
        "released_points": 0,
        "order_ref": "order-h1",
    }
    assert await lots(loyalty_pool, tenant, "m1") == {soon: 0, late: 50, forever: 20}
    assert await balances(loyalty_client, tenant, "m1") == {"available": 70, "pending": 0, "held": 100, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)

    captured = await capture(loyalty_client, tenant, "h1", 60)
    assert captured.status_code == 200, captured.text
    assert {k: captured.json()[k] for k in ("status", "captured_points", "released_points")} == {
        "status": "captured",
        "captured_points": 60,
        "released_points": 40,
    }
    # 60 spent = the 50 expiring first + 10 of the next; the 40 not spent go back to the later lot
    assert await lots(loyalty_pool, tenant, "m1") == {soon: 0, late: 90, forever: 20}
    assert await balances(loyalty_client, tenant, "m1") == {"available": 110, "pending": 0, "held": 0, "debt": 0}

    again = await capture(loyalty_client, tenant, "h1", 60)
    assert (again.status_code, again.headers.get("Idempotent-Replayed"), again.json()) == (
        200,
        "true",
        captured.json(),
    )
    other = await capture(loyalty_client, tenant, "h1", 50)
    voided = await void(loyalty_client, tenant, "h1")
    assert (other.status_code, other.json()["type"]) == (409, "hold-resolved")
    assert (voided.status_code, voided.json()["type"]) == (409, "hold-resolved")
    assert await entries(loyalty_pool, tenant, "points.hold_capture") == 1
    [event] = await events(loyalty_pool, tenant, "hold.captured")
    assert (event["hold_id"], event["captured_points"], event["released_points"]) == ("h1", 60, 40)
    read = await loyalty_client.get("/v1/holds/h1", headers=tenant.client)
    assert (read.status_code, read.json()) == (200, captured.json())
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_void_gives_everything_back_and_a_capture_after_it_is_refused(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    late = await give(loyalty_pool, tenant, "m1", 100, LATER)
    soon = await give(loyalty_pool, tenant, "m1", 50, SOON)
    assert (await hold(loyalty_client, tenant, "m1", "h1", 120)).status_code == 201

    voided = await void(loyalty_client, tenant, "h1")
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["released_points"]) == ("voided", 120)
    assert await lots(loyalty_pool, tenant, "m1") == {soon: 50, late: 100}
    assert await balances(loyalty_client, tenant, "m1") == {"available": 150, "pending": 0, "held": 0, "debt": 0}

    late_capture = await capture(loyalty_client, tenant, "h1", 10)
    assert (late_capture.status_code, late_capture.json()["type"]) == (409, "hold-resolved")
    again = await void(loyalty_client, tenant, "h1")
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert await entries(loyalty_pool, tenant, "points.hold_void") == 1
    assert [e["reason"] for e in await events(loyalty_pool, tenant, "hold.voided")] == ["void"]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_hold_refusals_write_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await put_member(loyalty_client, tenant, "m2")
    await give(loyalty_pool, tenant, "m1", 100, None)

    too_much = await hold(loyalty_client, tenant, "m1", "h-big", 101)
    ghost = await hold(loyalty_client, tenant, "ghost", "h-ghost", 1)
    assert (too_much.status_code, too_much.json()["type"]) == (409, "insufficient-points")
    assert (ghost.status_code, ghost.json()["type"]) == (404, "member-not-found")
    assert (await hold(loyalty_client, tenant, "m1", "h-big", 101)).headers.get("Idempotent-Replayed") == "true"
    assert await balances(loyalty_client, tenant, "m1") == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    assert (await hold(loyalty_client, tenant, "m1", "h1", 40)).status_code == 201
    retry = await hold(loyalty_client, tenant, "m1", "h1", 40)
    conflict = await hold(loyalty_client, tenant, "m2", "h1", 40)
    over = await capture(loyalty_client, tenant, "h1", 41)
    missing = await capture(loyalty_client, tenant, "nope", 1)
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, "true")
    assert (conflict.status_code, conflict.json()["type"]) == (409, "idempotency-conflict")
    assert (over.status_code, over.json()["type"]) == (422, "capture-exceeds-hold")
    assert (missing.status_code, missing.json()["type"]) == (404, "hold-not-found")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 60, "pending": 0, "held": 40, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_an_expired_hold_cannot_be_captured_and_the_job_voids_it_once(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    soon = await give(loyalty_pool, tenant, "m1", 50, SOON)
    late = await give(loyalty_pool, tenant, "m1", 50, LATER)
    assert (await hold(loyalty_client, tenant, "m1", "h1", 70, expires_in_seconds=1)).status_code == 201
    await asyncio.sleep(1.1)

    refused = await capture(loyalty_client, tenant, "h1", 70)  # the job has not run: nothing moves
    assert (refused.status_code, refused.json()["type"]) == (409, "hold-expired")
    assert (await balances(loyalty_client, tenant, "m1"))["held"] == 70

    first = await expire_holds(loyalty_client, tenant)
    second = await expire_holds(loyalty_client, tenant)
    assert (first["processed"], second["processed"]) == (1, 0)
    view = (await loyalty_client.get("/v1/holds/h1", headers=tenant.client)).json()
    assert (view["status"], view["released_points"], view["resolved_at"] is not None) == ("expired", 70, True)
    assert await lots(loyalty_pool, tenant, "m1") == {soon: 50, late: 50}
    assert await balances(loyalty_client, tenant, "m1") == {"available": 100, "pending": 0, "held": 0, "debt": 0}
    assert await entries(loyalty_pool, tenant, "points.hold_expire") == 1
    assert [e["reason"] for e in await events(loyalty_pool, tenant, "hold.voided")] == ["expired"]

    after = await capture(loyalty_client, tenant, "h1", 70)
    assert (after.status_code, after.json()["type"]) == (409, "hold-expired")
    assert (await void(loyalty_client, tenant, "h1")).status_code == 200  # its points are back already
    assert await entries(loyalty_pool, tenant, "points.hold_void") == 0
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_expiry_job_killed_between_batches_resumes_without_doubling_or_skipping(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 100, None)
    for n in range(5):
        assert (await hold(loyalty_client, tenant, "m1", f"h{n}", 10, expires_in_seconds=1)).status_code == 201
    assert (await hold(loyalty_client, tenant, "m1", "live", 10, expires_in_seconds=3600)).status_code == 201
    await asyncio.sleep(1.1)

    stopped = await expire_holds(loyalty_client, tenant, batch_size=2, max_batches=1)
    assert (stopped["status"], stopped["processed"]) == ("stopped", 2)
    assert await entries(loyalty_pool, tenant, "points.hold_expire") == 2
    await assert_ledger_ok(loyalty_client, tenant)

    resumed = await expire_holds(loyalty_client, tenant, batch_size=2)
    assert (resumed["status"], resumed["processed"]) == ("completed", 3)
    assert await entries(loyalty_pool, tenant, "points.hold_expire") == 5
    statuses = [(await loyalty_client.get(f"/v1/holds/h{n}", headers=tenant.client)).json()["status"] for n in range(5)]
    assert statuses == ["expired"] * 5
    assert (await loyalty_client.get("/v1/holds/live", headers=tenant.client)).json()["status"] == "held"
    assert await balances(loyalty_client, tenant, "m1") == {"available": 90, "pending": 0, "held": 10, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_concurrent_holds_never_reserve_more_than_available(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 100, SOON)
    replies = await asyncio.gather(*(hold(loyalty_client, tenant, "m1", f"h{n}", 30) for n in range(10)))
    assert [r.status_code for r in replies].count(201) == 3
    assert {r.json()["type"] for r in replies if r.status_code != 201} == {"insufficient-points"}
    assert await balances(loyalty_client, tenant, "m1") == {"available": 10, "pending": 0, "held": 90, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)
