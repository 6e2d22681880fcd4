"""The tier evaluation job (§5.2, §8): downgrades only after the grace days, `one_down` or
`to_qualified`; spending never demotes, reversed earnings can; re-runs and killed runs change nothing
twice. Qualifying points are written as earning writes them (tests/loyalty/conftest.py `qualify`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, configure, earn, put_member, qualify
from tests.loyalty.plans.helpers import events, history, member, run_job, spend

GRACE = timedelta(days=30)


async def _qualify(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int, at: datetime) -> None:
    async with pool.acquire() as conn:
        await qualify(conn, tenant.tenant_id, member_id, points, at)


async def _refund(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int, at: datetime) -> None:
    """A refund's negative qualifying row, as the refund code writes it."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO qualifying_points (tenant_id, member_id, points, occurred_at, source, source_ref)"
            " VALUES ($1, $2, $3, $4, 'refund', 'test-refund')",
            tenant.tenant_id,
            member_id,
            -points,
            at,
        )


async def _due(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str) -> datetime | None:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT downgrade_due_at FROM members WHERE tenant_id = $1 AND member_id = $2", tenant.tenant_id, member_id
        )


async def _earned(client, tenant: TenantKeys, member_id: str) -> str:
    return (await member(client, tenant, member_id))["tier"]["earned"]["code"]


async def _evaluate(client, tenant: TenantKeys, as_of: datetime, **options) -> dict:
    return await run_job(client, tenant, "evaluate-tiers", as_of, **options)


async def _member_at(client, pool, tenant: TenantKeys, member_id: str, points: int, earned_at: datetime) -> None:
    """A member whose qualifying points earned at `earned_at` lift them (the job upgrades at once)."""
    await put_member(client, tenant, member_id)
    await _qualify(pool, tenant, member_id, points, earned_at)
    await _evaluate(client, tenant, earned_at + timedelta(seconds=1))


async def test_downgrade_only_after_the_grace_days(loyalty_client, tenant, loyalty_pool) -> None:
    earned_at = datetime.now(UTC) - timedelta(days=300)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 1200, earned_at)
    assert await _earned(loyalty_client, tenant, "m1") == "premium"

    lapsed = earned_at + timedelta(days=366)  # the points left the 365-day window
    await _evaluate(loyalty_client, tenant, lapsed)
    assert await _due(loyalty_pool, tenant, "m1") == lapsed + GRACE
    await _evaluate(loyalty_client, tenant, lapsed + GRACE - timedelta(seconds=1))
    assert await _earned(loyalty_client, tenant, "m1") == "premium"
    assert await _due(loyalty_pool, tenant, "m1") == lapsed + GRACE  # not pushed back by later runs

    await _evaluate(loyalty_client, tenant, lapsed + GRACE)
    assert await _earned(loyalty_client, tenant, "m1") == "normal"
    assert await _due(loyalty_pool, tenant, "m1") is None
    assert [
        (h["from_tier"], h["to_tier"], h["source"], h["reason"]) for h in await history(loyalty_client, tenant, "m1")
    ] == [("premium", "normal", "earned", "downgrade"), ("normal", "premium", "earned", "upgrade")]
    [down] = [e for e in await events(loyalty_pool, tenant, "member.tier_changed") if e["direction"] == "down"]
    assert (down["from_tier"], down["to_tier"], down["reason"]) == ("premium", "normal", "downgrade")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_one_down_steps_a_rank_per_grace_period(loyalty_client, tenant, loyalty_pool) -> None:
    earned_at = datetime.now(UTC) - timedelta(days=300)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 6000, earned_at)
    assert await _earned(loyalty_client, tenant, "m1") == "elite"

    lapsed = earned_at + timedelta(days=366)
    await _evaluate(loyalty_client, tenant, lapsed)
    await _evaluate(loyalty_client, tenant, lapsed + GRACE)
    assert await _earned(loyalty_client, tenant, "m1") == "premium"
    await _evaluate(loyalty_client, tenant, lapsed + GRACE + timedelta(days=1))  # a new grace period starts
    assert await _due(loyalty_pool, tenant, "m1") == lapsed + GRACE + timedelta(days=1) + GRACE
    await _evaluate(loyalty_client, tenant, lapsed + 2 * GRACE + timedelta(days=1))
    assert await _earned(loyalty_client, tenant, "m1") == "normal"
    assert [(h["from_tier"], h["to_tier"]) for h in await history(loyalty_client, tenant, "m1")] == [
        ("premium", "normal"),
        ("elite", "premium"),
        ("normal", "elite"),
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_to_qualified_drops_straight_to_the_qualified_tier(loyalty_client, tenant, loyalty_pool) -> None:
    await configure(loyalty_client, tenant, downgrade_mode="to_qualified", downgrade_grace_days=10)
    earned_at = datetime.now(UTC) - timedelta(days=300)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 6000, earned_at)
    lapsed = earned_at + timedelta(days=366)
    await _evaluate(loyalty_client, tenant, lapsed)
    assert await _due(loyalty_pool, tenant, "m1") == lapsed + timedelta(days=10)
    await _evaluate(loyalty_client, tenant, lapsed + timedelta(days=10))
    assert await _earned(loyalty_client, tenant, "m1") == "normal"
    await assert_ledger_ok(loyalty_client, tenant)


async def test_spending_never_demotes(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 1200, now - timedelta(days=10))
    async with loyalty_pool.acquire() as conn:
        await earn(conn, tenant.tenant_id, "m1", 1200, now - timedelta(days=10), None)
    await spend(loyalty_pool, tenant, "m1", 1200)
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 0

    await _evaluate(loyalty_client, tenant, now)
    await _evaluate(loyalty_client, tenant, now + GRACE + timedelta(days=1))
    assert await _earned(loyalty_client, tenant, "m1") == "premium"
    assert await _due(loyalty_pool, tenant, "m1") is None
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_refund_can_lead_to_a_downgrade_and_new_earnings_cancel_it(
    loyalty_client, tenant, loyalty_pool
) -> None:
    now = datetime.now(UTC)
    for member_id in ("m1", "m2"):
        await _member_at(loyalty_client, loyalty_pool, tenant, member_id, 1200, now - timedelta(days=10))
        await _refund(loyalty_pool, tenant, member_id, 500, now - timedelta(days=5))
    await _evaluate(loyalty_client, tenant, now)
    assert await _due(loyalty_pool, tenant, "m1") == now + GRACE

    await _qualify(loyalty_pool, tenant, "m2", 400, now + timedelta(days=1))  # back to 1100
    await _evaluate(loyalty_client, tenant, now + timedelta(days=2))
    assert await _due(loyalty_pool, tenant, "m2") is None

    await _evaluate(loyalty_client, tenant, now + GRACE)
    assert (await _earned(loyalty_client, tenant, "m1"), await _earned(loyalty_client, tenant, "m2")) == (
        "normal",
        "premium",
    )
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_second_run_changes_nothing(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 1200, now - timedelta(days=400))
    await put_member(loyalty_client, tenant, "m2")
    await _qualify(loyalty_pool, tenant, "m2", 1500, now - timedelta(days=1))  # an upgrade the job makes
    first = await _evaluate(loyalty_client, tenant, now)
    state = (
        await history(loyalty_client, tenant, "m1"),
        await history(loyalty_client, tenant, "m2"),
        await events(loyalty_pool, tenant, "member.tier_changed"),
        await _due(loyalty_pool, tenant, "m1"),
    )
    second = await _evaluate(loyalty_client, tenant, now)
    assert (first["processed"], second["processed"]) == (2, 0)
    assert state == (
        await history(loyalty_client, tenant, "m1"),
        await history(loyalty_client, tenant, "m2"),
        await events(loyalty_pool, tenant, "member.tier_changed"),
        await _due(loyalty_pool, tenant, "m1"),
    )
    assert await _earned(loyalty_client, tenant, "m2") == "premium"
    assert state[3] == now + GRACE
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_run_killed_between_batches_resumes(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    for n in range(5):
        await put_member(loyalty_client, tenant, f"m{n}")
        await _qualify(loyalty_pool, tenant, f"m{n}", 1000 * (n + 1), now - timedelta(days=1))
    stopped = await _evaluate(loyalty_client, tenant, now, batch_size=2, max_batches=1)
    assert (stopped["status"], stopped["processed"]) == ("stopped", 2)
    resumed = await _evaluate(loyalty_client, tenant, now, batch_size=2)
    assert (resumed["status"], resumed["processed"]) == ("completed", 3)
    tiers = [await _earned(loyalty_client, tenant, f"m{n}") for n in range(5)]
    assert tiers == ["premium", "premium", "premium", "premium", "elite"]
    changes = await events(loyalty_pool, tenant, "member.tier_changed")
    assert sorted(c["member_id"] for c in changes) == [f"m{n}" for n in range(5)]
    async with loyalty_pool.acquire() as conn:
        evaluated = await conn.fetchval(
            "SELECT count(*) FROM members WHERE tenant_id = $1 AND tier_evaluated_at = $2", tenant.tenant_id, now
        )
    assert evaluated == 5
    await assert_ledger_ok(loyalty_client, tenant)


async def test_tier_history_pages_newest_first(loyalty_client, tenant, loyalty_pool) -> None:
    earned_at = datetime.now(UTC) - timedelta(days=300)
    await _member_at(loyalty_client, loyalty_pool, tenant, "m1", 6000, earned_at)
    lapsed = earned_at + timedelta(days=366)
    await _evaluate(loyalty_client, tenant, lapsed)
    await _evaluate(loyalty_client, tenant, lapsed + GRACE)
    first = await loyalty_client.get("/v1/members/m1/tier-history?limit=1", headers=tenant.client)
    assert [h["to_tier"] for h in first.json()["items"]] == ["premium"]
    rest = await loyalty_client.get(
        f"/v1/members/m1/tier-history?cursor={first.json()['next_cursor']}", headers=tenant.client
    )
    assert ([h["to_tier"] for h in rest.json()["items"]], rest.json()["next_cursor"]) == (["elite"], None)
    bad = await loyalty_client.get("/v1/members/m1/tier-history?cursor=WyJ4Il0", headers=tenant.client)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")
    missing = await loyalty_client.get("/v1/members/ghost/tier-history", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "member-not-found")
    await assert_ledger_ok(loyalty_client, tenant)
