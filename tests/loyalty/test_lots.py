"""Lots (§5.6, §4.3 item 5): FEFO allocation, exact restoration, all-or-nothing, and the verify check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo, restore_allocations, take_lot
from shared.errors import DomainError
from shared.ledger import Leg, balances, post_entry
from tests.loyalty.conftest import assert_ledger_ok, earn, put_member

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


async def _move(conn: asyncpg.Connection, tenant_id: str, key: str, debit: str, credit: str, points: int) -> int:
    entry = await post_entry(
        conn, tenant_id, kind="test", idempotency_key=key, legs=[Leg(debit, points), Leg(credit, -points)]
    )
    return entry.entry_id


async def _lots(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT lot_id, remaining FROM lots WHERE tenant_id = $1 AND member_id = $2", tenant_id, member_id
    )
    return {r["lot_id"]: r["remaining"] for r in rows}


async def _available(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> int:
    return (await balances(conn, tenant_id, [accounts.points(member_id)]))[accounts.points(member_id)].balance


async def test_spending_takes_the_first_expiring_lots_and_restores_them_exactly(
    loyalty_client, loyalty_pool, tenant
) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        march = await earn(conn, t, m, 100, EARNED, MAR)
        february = await earn(conn, t, m, 50, EARNED, FEB)
        forever = await earn(conn, t, m, 30, EARNED, None)

        taken = await allocate_fefo(conn, t, m, 120, "redemption", "r1")
        assert [(a.lot_id, a.points) for a in taken] == [(february, 50), (march, 70)]
        await _move(conn, t, "redeem:r1", accounts.points(m), accounts.REDEEMED, 120)
        assert await _lots(conn, t, m) == {march: 30, february: 0, forever: 30}

        held = await allocate_fefo(conn, t, m, 60, "hold", "h1")
        assert [(a.lot_id, a.points) for a in held] == [(march, 30), (forever, 30)]  # never-expiring last
        await _move(conn, t, "hold:h1", accounts.points(m), accounts.held(m), 60)
        assert await _available(conn, t, m) == 0

    await assert_ledger_ok(loyalty_client, tenant)

    async with loyalty_pool.acquire() as conn, conn.transaction():
        back = await restore_allocations(conn, t, "hold", "h1")
        assert sorted((a.lot_id, a.points) for a in back) == sorted([(march, 30), (forever, 30)])
        await _move(conn, t, "void:h1", accounts.held(m), accounts.points(m), 60)
        assert await restore_allocations(conn, t, "hold", "h1") == []  # at most once

        back = await restore_allocations(conn, t, "redemption", "r1")
        assert [(a.lot_id, a.points, a.expires_at) for a in back] == [(february, 50, FEB), (march, 70, MAR)]
        await _move(conn, t, "cancel:r1", accounts.REDEEMED, accounts.points(m), 120)
        assert await _lots(conn, t, m) == {march: 100, february: 50, forever: 30}
        assert await _available(conn, t, m) == 180

    await assert_ledger_ok(loyalty_client, tenant)


async def test_an_allocation_takes_all_it_needs_or_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        lot = await earn(conn, t, m, 40, EARNED, FEB)
        with pytest.raises(DomainError) as refused:
            await allocate_fefo(conn, t, m, 41, "redemption", "r1")
        assert (refused.value.type, refused.value.status) == ("insufficient-points", 409)
        assert "40 points available" in refused.value.detail
        assert await _lots(conn, t, m) == {lot: 40}
        assert await conn.fetchval("SELECT count(*) FROM lot_allocations WHERE tenant_id = $1", t) == 0
        with pytest.raises(DomainError):
            await allocate_fefo(conn, t, "nobody", 1, "redemption", "r2")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_concurrent_allocations_never_overspend(loyalty_client, loyalty_pool, tenant) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        for _ in range(4):
            await earn(conn, t, m, 25, EARNED, FEB)

    async def spend(ref: str) -> bool:
        async with loyalty_pool.acquire() as conn, conn.transaction():
            try:
                await allocate_fefo(conn, t, m, 60, "redemption", ref)
            except DomainError:
                return False
            await _move(conn, t, f"redeem:{ref}", accounts.points(m), accounts.REDEEMED, 60)
            return True

    results = await asyncio.gather(*(spend(f"r{i}") for i in range(6)))
    assert results.count(True) == 1
    async with loyalty_pool.acquire() as conn:
        assert sum((await _lots(conn, t, m)).values()) == 40 == await _available(conn, t, m)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_verify_reports_lots_that_disagree_with_the_ledger(loyalty_client, loyalty_pool, tenant) -> None:
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        await earn(conn, t, m, 10, EARNED, FEB)
        # points spent without touching the lots: the books and the lots now disagree
        await _move(conn, t, "stray", accounts.points(m), accounts.REDEEMED, 4)
    report = (await loyalty_client.get("/v1/ledger/verify", headers=tenant.admin)).json()
    assert not report["ok"]
    assert {v["invariant"] for v in report["violations"]} == {"5a-available-equals-live-lots"}
    assert "remaining in lots 10 <> points available 6" in report["violations"][0]["detail"]


async def test_a_partial_restore_gives_back_the_latest_expiring_points(loyalty_client, loyalty_pool, tenant) -> None:
    """A hold of 90 captured for 50: the 50 spent are the first-expiring ones, 40 go back."""
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        february = await earn(conn, t, m, 30, EARNED, FEB)
        march = await earn(conn, t, m, 30, EARNED, MAR)
        forever = await earn(conn, t, m, 30, EARNED, None)
        await allocate_fefo(conn, t, m, 90, "hold", "h1")
        await _move(conn, t, "hold:h1", accounts.points(m), accounts.held(m), 90)

        back = await restore_allocations(conn, t, "hold", "h1", points=40)
        assert [(a.lot_id, a.points) for a in back] == [(march, 10), (forever, 30)]
        await _move(conn, t, "capture:h1", accounts.held(m), accounts.REDEEMED, 50)
        await _move(conn, t, "release:h1", accounts.held(m), accounts.points(m), 40)
        assert await _lots(conn, t, m) == {february: 0, march: 10, forever: 30}

        # the rest of what the hold took can still be given back, and no more
        back = await restore_allocations(conn, t, "hold", "h1", points=1000)
        assert [(a.lot_id, a.points) for a in back] == [(february, 30), (march, 20)]
        await _move(conn, t, "refund:h1", accounts.REDEEMED, accounts.points(m), 50)
        assert await restore_allocations(conn, t, "hold", "h1") == []
        assert await _lots(conn, t, m) == {february: 30, march: 30, forever: 30}
        with pytest.raises(DomainError):
            await restore_allocations(conn, t, "hold", "h1", points=0)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_sweep_takes_one_named_lot_whole(loyalty_client, loyalty_pool, tenant) -> None:
    """Two lots expiring at the same time: expiring the second takes the second, not FEFO's first."""
    t, m = tenant.tenant_id, "m1"
    await put_member(loyalty_client, tenant, m)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        first = await earn(conn, t, m, 30, EARNED, FEB)
        second = await earn(conn, t, m, 20, EARNED, FEB)
        taken = await take_lot(conn, t, second, "expiry", f"lot:{second}:1")
        assert taken is not None and (taken.lot_id, taken.points, taken.expires_at) == (second, 20, FEB)
        await _move(conn, t, f"expire:lot:{second}:1", accounts.points(m), accounts.EXPIRED, 20)
        assert await take_lot(conn, t, second, "expiry", f"lot:{second}:2") is None
        assert await _lots(conn, t, m) == {first: 30, second: 0}
    await assert_ledger_ok(loyalty_client, tenant)
