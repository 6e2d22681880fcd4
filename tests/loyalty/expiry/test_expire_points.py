"""The expiry sweep (§5.6, §8): due lots lose exactly what remains of them, once per take, in
restartable batches; a lot given points back after it expired is expired again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo, restore_allocations
from shared.ledger import Leg, balances, post_entry
from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, earn, put_member

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
JAN20 = datetime(2026, 1, 20, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


async def expire(client: httpx.AsyncClient, tenant: TenantKeys, as_of: datetime, **options: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/jobs/expire-points", json={"as_of": as_of.isoformat(), **options}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def available(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> int:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return int(response.json()["balances"]["available"])


async def expired_total(pool: asyncpg.Pool, tenant_id: str) -> int:
    async with pool.acquire() as conn:
        found = await balances(conn, tenant_id, [accounts.EXPIRED])
    return found[accounts.EXPIRED].balance if accounts.EXPIRED in found else 0


async def expiry_entries(pool: asyncpg.Pool, tenant_id: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT idempotency_key, effective_at, source_ref FROM entries"
            " WHERE tenant_id = $1 AND kind = 'points.expire' ORDER BY entry_id",
            tenant_id,
        )


async def lots_left(pool: asyncpg.Pool, tenant_id: str, *lot_ids: int) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT lot_id, remaining FROM lots WHERE tenant_id = $1 AND lot_id = ANY($2::bigint[])",
            tenant_id,
            list(lot_ids),
        )
    by_id = {r["lot_id"]: r["remaining"] for r in rows}
    return [by_id[lot] for lot in lot_ids]


async def spend(conn: asyncpg.Connection, tenant_id: str, member_id: str, points: int, ref: str) -> None:
    """A redemption as §5.7 will do it: FEFO allocation and `points + / redeemed −`."""
    await allocate_fefo(conn, tenant_id, member_id, points, "redemption", ref)
    await post_entry(
        conn,
        tenant_id,
        kind="points.redeem",
        idempotency_key=f"redeem:{ref}",
        legs=[Leg(accounts.points(member_id), points), Leg(accounts.REDEEMED, -points)],
    )


async def cancel(conn: asyncpg.Connection, tenant_id: str, member_id: str, ref: str) -> int:
    """A cancelled redemption: the lots get their points back, whatever their expiry."""
    back = sum(a.points for a in await restore_allocations(conn, tenant_id, "redemption", ref))
    await post_entry(
        conn,
        tenant_id,
        kind="points.redeem_cancel",
        idempotency_key=f"cancel:{ref}",
        legs=[Leg(accounts.REDEEMED, back), Leg(accounts.points(member_id), -back)],
    )
    return back


async def test_the_sweep_expires_exactly_what_remains_of_due_lots_after_fefo_spending(
    loyalty_client, loyalty_pool, tenant
) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        march = await earn(conn, t, m, 50, EARNED, MAR)
        february = await earn(conn, t, m, 100, EARNED, FEB)
        forever = await earn(conn, t, m, 30, EARNED, None)
        january = await earn(conn, t, m, 20, EARNED, JAN20)
        await spend(conn, t, m, 110, "r1")  # FEFO: all of January's 20, then 90 of February's
    assert await lots_left(loyalty_pool, t, january, february, march, forever) == [0, 10, 50, 30]

    before = await expire(loyalty_client, tenant, FEB - timedelta(microseconds=1))
    assert before["processed"] == 0  # January's lot is due but empty; February's is not due yet

    at_february = await expire(loyalty_client, tenant, FEB)  # the expiry instant itself is due
    assert (at_february["processed"], at_february["status"]) == (1, "completed")
    assert await lots_left(loyalty_pool, t, january, february, march, forever) == [0, 0, 50, 30]
    assert await available(loyalty_client, tenant, m) == 80
    assert await expired_total(loyalty_pool, t) == 10

    at_march = await expire(loyalty_client, tenant, MAR + timedelta(days=400))
    assert at_march["processed"] == 1  # the never-expiring lot stays
    assert await lots_left(loyalty_pool, t, january, february, march, forever) == [0, 0, 0, 30]
    assert await available(loyalty_client, tenant, m) == 30
    assert await expired_total(loyalty_pool, t) == 60
    assert [
        (e["idempotency_key"], e["effective_at"], e["source_ref"]) for e in await expiry_entries(loyalty_pool, t)
    ] == [
        (f"expire:lot:{february}:1", FEB, f"lot:{february}"),
        (f"expire:lot:{march}:1", MAR, f"lot:{march}"),
    ]
    async with loyalty_pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = 'points.expired' ORDER BY seq", t
        )
    assert [(e["data"]["lot_id"], e["data"]["points"], e["data"]["member_id"]) for e in events] == [
        (february, 10, m),
        (march, 50, m),
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_lot_given_points_back_after_it_expired_is_expired_again(loyalty_client, loyalty_pool, tenant) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        lot = await earn(conn, t, m, 100, EARNED, FEB)
        whole = await earn(conn, t, m, 40, EARNED, MAR)
        await spend(conn, t, m, 60, "r1")  # 60 of the February lot
        await spend(conn, t, m, 80, "r2")  # the February lot's other 40 and the whole March lot
    first = await expire(loyalty_client, tenant, MAR)
    assert first["processed"] == 0  # nothing left in either lot
    assert await expired_total(loyalty_pool, t) == 0

    async with loyalty_pool.acquire() as conn, conn.transaction():
        assert await cancel(conn, t, m, "r2") == 80  # 40 back to February, 40 back to March: both overdue
    assert await available(loyalty_client, tenant, m) == 80
    second = await expire(loyalty_client, tenant, MAR)
    assert second["processed"] == 2
    assert await available(loyalty_client, tenant, m) == 0

    async with loyalty_pool.acquire() as conn, conn.transaction():
        assert await cancel(conn, t, m, "r1") == 60  # back to the February lot, expired once already
    third = await expire(loyalty_client, tenant, MAR)
    assert third["processed"] == 1
    assert await available(loyalty_client, tenant, m) == 0
    assert await expired_total(loyalty_pool, t) == 140
    assert [e["idempotency_key"] for e in await expiry_entries(loyalty_pool, t)] == [
        f"expire:lot:{lot}:1",
        f"expire:lot:{whole}:1",
        f"expire:lot:{lot}:2",
    ]
    async with loyalty_pool.acquire() as conn:
        takes = await conn.fetch(
            "SELECT ref, points FROM lot_allocations WHERE tenant_id = $1 AND purpose = 'expiry' ORDER BY allocation_id",
            t,
        )
    assert [(r["ref"], r["points"]) for r in takes] == [
        (f"expire:lot:{lot}:1", 40),
        (f"expire:lot:{whole}:1", 40),
        (f"expire:lot:{lot}:2", 60),
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_second_run_posts_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        for points in (10, 20, 30):
            await earn(conn, t, m, points, EARNED, FEB)
    first = await expire(loyalty_client, tenant, FEB)
    second = await expire(loyalty_client, tenant, FEB + timedelta(days=1))
    assert (first["processed"], second["processed"]) == (3, 0)
    assert len(await expiry_entries(loyalty_pool, t)) == 3
    assert await expired_total(loyalty_pool, t) == 60
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_run_killed_between_batches_resumes_and_expires_every_lot_once(
    loyalty_client, loyalty_pool, tenant
) -> None:
    t = tenant.tenant_id
    lots: list[int] = []
    for n in range(3):
        await put_member(loyalty_client, tenant, f"m{n}")
    async with loyalty_pool.acquire() as conn, conn.transaction():
        for n in range(7):  # several members, several expiry instants, two at the same instant
            expires = FEB + timedelta(hours=n // 2)
            lots.append(await earn(conn, t, f"m{n % 3}", 10 + n, EARNED, expires))

    stopped = await expire(loyalty_client, tenant, MAR, batch_size=3, max_batches=1)
    assert (stopped["status"], stopped["processed"], stopped["batches"]) == ("stopped", 3, 1)
    assert len(await expiry_entries(loyalty_pool, t)) == 3
    await assert_ledger_ok(loyalty_client, tenant)

    resumed = await expire(loyalty_client, tenant, MAR, batch_size=3)
    assert (resumed["status"], resumed["processed"]) == ("completed", 4)
    keys = [e["idempotency_key"] for e in await expiry_entries(loyalty_pool, t)]
    assert sorted(keys) == sorted(f"expire:lot:{lot}:1" for lot in lots)
    assert await lots_left(loyalty_pool, t, *lots) == [0] * 7
    assert await expired_total(loyalty_pool, t) == sum(10 + n for n in range(7))
    assert (await expire(loyalty_client, tenant, MAR))["processed"] == 0
    await assert_ledger_ok(loyalty_client, tenant)
