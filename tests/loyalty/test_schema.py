"""The database is the guarantee (§5): whatever SQL runs, no lot goes negative or above its amount,
no stock below zero, no second award in a completion slot, no restoration beyond what was taken."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from services.loyalty.lots import allocate_fefo
from tests.loyalty.conftest import earn, put_member

EARNED = datetime(2026, 1, 10, tzinfo=UTC)


async def _refused(conn: asyncpg.Connection, sql: str, *args: object) -> asyncpg.PostgresError:
    with pytest.raises(asyncpg.PostgresError) as refused:
        async with conn.transaction():
            await conn.execute(sql, *args)
    return refused.value


async def test_lots_and_allocations_stay_within_bounds(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn:
        async with conn.transaction():
            lot = await earn(conn, t, "m1", 10, EARNED, None)
            await allocate_fefo(conn, t, "m1", 4, "redemption", "r1")
        for remaining in (-1, 11):
            error = await _refused(
                conn, "UPDATE lots SET remaining = $3 WHERE tenant_id = $1 AND lot_id = $2", t, lot, remaining
            )
            assert error.constraint_name == "lots_remaining_within_amount"
        error = await _refused(
            conn,
            "UPDATE lot_allocations SET restored = 5, restored_at = now() WHERE tenant_id = $1 AND ref = 'r1'",
            t,
        )
        assert error.constraint_name == "lot_allocations_restored_within"
        error = await _refused(
            conn,
            "INSERT INTO lot_allocations (tenant_id, lot_id, member_id, purpose, ref, points)"
            " VALUES ($1, $2, 'm1', 'redemption', 'r1', 1)",
            t,
            lot,
        )
        assert error.constraint_name == "lot_allocations_once_per_lot"


async def test_stock_never_goes_below_zero(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO rewards (tenant_id, code, name, cost_points, stock, kind) VALUES ($1, 'mug', 'Mug', 100, 1, 'gift')",
            t,
        )
        await conn.execute("UPDATE rewards SET stock = stock - 1 WHERE tenant_id = $1 AND code = 'mug'", t)
        error = await _refused(conn, "UPDATE rewards SET stock = stock - 1 WHERE tenant_id = $1 AND code = 'mug'", t)
        assert isinstance(error, asyncpg.CheckViolationError)


async def test_one_award_per_completion_slot(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    insert = (
        "INSERT INTO task_completions (tenant_id, completion_id, member_id, task_code, period_key, sequence,"
        " occurred_at, points) VALUES ($1, $2, 'm1', 'checkin', '2026-11-23', 1, now(), 5)"
    )
    async with loyalty_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tasks (tenant_id, code, name, kind, points, period) VALUES ($1, 'checkin', 'Check in', 'checkin', 5, 'day')",
            t,
        )
        await conn.execute(insert, t, "c1")
        error = await _refused(conn, insert, t, "c2")
        assert error.constraint_name == "task_completions_once_per_slot"


async def test_verify_reports_a_lot_that_lost_points_without_an_allocation(
    loyalty_client, loyalty_pool, tenant
) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn:
        async with conn.transaction():
            lot = await earn(conn, t, "m1", 10, EARNED, None)
        await conn.execute("UPDATE lots SET remaining = 7 WHERE tenant_id = $1 AND lot_id = $2", t, lot)
    report = (await loyalty_client.get("/v1/ledger/verify", headers=tenant.admin)).json()
    found = {v["invariant"]: v["detail"] for v in report["violations"]}
    assert set(found) == {"5a-available-equals-live-lots", "5b-lot-remaining-consistent"}
    assert found["5b-lot-remaining-consistent"] == "amount 10, remaining 7, allocated and not restored 0"
