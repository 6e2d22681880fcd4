"""Redemptions (§5.7): points out of the first-expiring lots, stock down atomically, every refusal writes
nothing, cancellation gives back exactly what was taken, once."""

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


async def give(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int, expires: datetime | None) -> int:
    """`points` available to the member in one lot expiring at `expires`; the lot's id."""
    async with pool.acquire() as conn, conn.transaction():
        return await earn(conn, tenant.tenant_id, member_id, points, EARNED, expires)


async def reward(client: httpx.AsyncClient, tenant: TenantKeys, code: str, **body: Any) -> dict[str, Any]:
    defaults = {"name": code, "cost_points": 10, "kind": "gift"}
    response = await client.put(f"/v1/rewards/{code}", json=defaults | body, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def redeem(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, redemption_id: str, code: str, quantity: int = 1
) -> httpx.Response:
    return await client.post(
        f"/v1/members/{member_id}/redemptions",
        json={"redemption_id": redemption_id, "reward_code": code, "quantity": quantity},
        headers=tenant.client,
    )


async def available(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> int:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return int(response.json()["balances"]["available"])


async def stock(client: httpx.AsyncClient, tenant: TenantKeys, code: str) -> int | None:
    return (await client.get(f"/v1/rewards/{code}", headers=tenant.client)).json()["stock"]


async def lots(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str) -> dict[int, tuple[int, datetime | None]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT lot_id, remaining, expires_at FROM lots WHERE tenant_id = $1 AND member_id = $2",
            tenant.tenant_id,
            member_id,
        )
    return {r["lot_id"]: (r["remaining"], r["expires_at"]) for r in rows}


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


async def test_fifty_concurrent_redemptions_stop_exactly_at_the_balance(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 200, NOW + timedelta(days=30))
    await reward(loyalty_client, tenant, "mug", cost_points=10, stock=100)

    replies = await asyncio.gather(*(redeem(loyalty_client, tenant, "m1", f"r{n}", "mug") for n in range(50)))

    statuses = [r.status_code for r in replies]
    assert statuses.count(201) == 20, [r.text for r in replies if r.status_code not in (201, 409)]
    assert {r.json()["type"] for r in replies if r.status_code != 201} == {"insufficient-points"}
    assert await available(loyalty_client, tenant, "m1") == 0
    assert await stock(loyalty_client, tenant, "mug") == 80
    assert await entries(loyalty_pool, tenant, "points.redeem") == 20
    assert len(await events(loyalty_pool, tenant, "points.redeemed")) == 20
    await assert_ledger_ok(loyalty_client, tenant)


async def test_concurrent_redemptions_by_many_members_stop_exactly_at_the_stock(
    loyalty_client, loyalty_pool, tenant
) -> None:
    members = [f"m{n}" for n in range(10)]
    for member in members:
        await put_member(loyalty_client, tenant, member)
        await give(loyalty_pool, tenant, member, 100, None)
    await reward(loyalty_client, tenant, "bag", cost_points=10, stock=20)

    replies = await asyncio.gather(
        *(redeem(loyalty_client, tenant, m, f"{m}-{n}", "bag") for n in range(5) for m in members)
    )

    assert [r.status_code for r in replies].count(201) == 20, [r.text for r in replies if r.status_code >= 500]
    assert {r.json()["type"] for r in replies if r.status_code != 201} == {"out-of-stock"}
    assert await stock(loyalty_client, tenant, "bag") == 0
    spent = sum([100 - await available(loyalty_client, tenant, m) for m in members])
    assert spent == 20 * 10
    await assert_ledger_ok(loyalty_client, tenant)


async def test_concurrent_redemptions_of_one_member_stop_at_the_per_member_limit(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 1000, None)
    await reward(loyalty_client, tenant, "cap", cost_points=10, per_member_limit=3)

    replies = await asyncio.gather(*(redeem(loyalty_client, tenant, "m1", f"r{n}", "cap") for n in range(10)))

    assert [r.status_code for r in replies].count(201) == 3
    assert {r.json()["type"] for r in replies if r.status_code != 201} == {"limit-reached"}
    assert await available(loyalty_client, tenant, "m1") == 970
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_redemption_takes_the_first_expiring_lots_and_a_cancel_restores_exactly_them(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    soon, later = NOW + timedelta(days=10), NOW + timedelta(days=40)
    late_lot = await give(loyalty_pool, tenant, "m1", 100, later)
    forever_lot = await give(loyalty_pool, tenant, "m1", 30, None)
    soon_lot = await give(loyalty_pool, tenant, "m1", 50, soon)
    await reward(loyalty_client, tenant, "tea", cost_points=40, stock=10)

    made = await redeem(loyalty_client, tenant, "m1", "r1", "tea", quantity=3)

    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("member_id", "reward_code", "quantity", "points", "status")} == {
        "member_id": "m1",
        "reward_code": "tea",
        "quantity": 3,
        "points": 120,
        "status": "completed",
    }
    assert await lots(loyalty_pool, tenant, "m1") == {
        soon_lot: (0, soon),
        late_lot: (30, later),
        forever_lot: (30, None),
    }
    assert await stock(loyalty_client, tenant, "tea") == 7
    await assert_ledger_ok(loyalty_client, tenant)

    cancelled = await loyalty_client.post("/v1/redemptions/r1/cancel", json={}, headers=tenant.client)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    assert await lots(loyalty_pool, tenant, "m1") == {
        soon_lot: (50, soon),
        late_lot: (100, later),
        forever_lot: (30, None),
    }
    assert await available(loyalty_client, tenant, "m1") == 180
    assert await stock(loyalty_client, tenant, "tea") == 10

    again = await loyalty_client.post("/v1/redemptions/r1/cancel", json={}, headers=tenant.client)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert again.json() == cancelled.json()
    assert await available(loyalty_client, tenant, "m1") == 180
    assert await stock(loyalty_client, tenant, "tea") == 10
    assert await entries(loyalty_pool, tenant, "points.redeem_cancel") == 1
    [event] = await events(loyalty_pool, tenant, "points.redemption_cancelled")
    assert (event["redemption_id"], event["points"]) == ("r1", 120)
    missing = await loyalty_client.post("/v1/redemptions/nope/cancel", json={}, headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "redemption-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_cancelled_redemption_frees_its_share_of_the_limit(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 100, None)
    await reward(loyalty_client, tenant, "once", cost_points=10, per_member_limit=1, stock=None)
    assert (await redeem(loyalty_client, tenant, "m1", "r1", "once")).status_code == 201
    assert (await redeem(loyalty_client, tenant, "m1", "r2", "once")).json()["type"] == "limit-reached"
    await loyalty_client.post("/v1/redemptions/r1/cancel", json={}, headers=tenant.client)
    assert (await redeem(loyalty_client, tenant, "m1", "r3", "once")).status_code == 201
    assert await stock(loyalty_client, tenant, "once") is None  # unlimited stays unlimited
    assert await available(loyalty_client, tenant, "m1") == 90
    await assert_ledger_ok(loyalty_client, tenant)


async def test_every_refusal_writes_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 100, None)
    await reward(loyalty_client, tenant, "limited", cost_points=10, per_member_limit=2, stock=50)
    await reward(loyalty_client, tenant, "vip", cost_points=10, min_tier="premium", stock=50)
    await reward(loyalty_client, tenant, "scarce", cost_points=10, stock=1)
    await reward(loyalty_client, tenant, "dear", cost_points=500, stock=50)
    await reward(loyalty_client, tenant, "off", cost_points=10, stock=50, active=False)
    await reward(loyalty_client, tenant, "future", cost_points=10, stock=50, valid_from="2999-01-01T00:00:00Z")
    await reward(
        loyalty_client,
        tenant,
        "past",
        cost_points=10,
        stock=50,
        valid_from="2020-01-01T00:00:00Z",
        valid_until="2021-01-01T00:00:00Z",
    )
    assert (await redeem(loyalty_client, tenant, "m1", "ok", "limited", quantity=2)).status_code == 201

    refusals = {
        "limit-reached": await redeem(loyalty_client, tenant, "m1", "r-limit", "limited"),
        "tier-too-low": await redeem(loyalty_client, tenant, "m1", "r-tier", "vip"),
        "out-of-stock": await redeem(loyalty_client, tenant, "m1", "r-stock", "scarce", quantity=2),
        "insufficient-points": await redeem(loyalty_client, tenant, "m1", "r-points", "dear"),
        "reward-inactive": await redeem(loyalty_client, tenant, "m1", "r-off", "off"),
        "reward-not-valid": await redeem(loyalty_client, tenant, "m1", "r-future", "future"),
        "member-not-found": await redeem(loyalty_client, tenant, "ghost", "r-ghost", "limited"),
        "reward-not-found": await redeem(loyalty_client, tenant, "m1", "r-none", "none"),
    }
    past = await redeem(loyalty_client, tenant, "m1", "r-past", "past")

    for problem, reply in refusals.items():
        assert reply.json()["type"] == problem, (problem, reply.text)
        assert reply.status_code == (404 if problem.endswith("not-found") else 409)
    assert past.json()["type"] == "reward-not-valid"
    assert await available(loyalty_client, tenant, "m1") == 80
    for code, left in (("limited", 48), ("vip", 50), ("scarce", 1), ("dear", 50), ("off", 50), ("future", 50)):
        assert await stock(loyalty_client, tenant, code) == left, code
    assert await entries(loyalty_pool, tenant, "points.redeem") == 1
    assert (await loyalty_client.get("/v1/redemptions/r-points", headers=tenant.client)).status_code == 404

    # A refusal is pinned to its id (§3.3): the same request again gets the same answer.
    replay = await redeem(loyalty_client, tenant, "m1", "r-points", "dear")
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (409, "true")
    assert replay.json() == refusals["insufficient-points"].json()
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_effective_tier_decides_the_minimum_tier(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await give(loyalty_pool, tenant, "m1", 100, None)
    await reward(loyalty_client, tenant, "vip", cost_points=10, min_tier="premium")
    assert (await redeem(loyalty_client, tenant, "m1", "r1", "vip")).json()["type"] == "tier-too-low"
    async with loyalty_pool.acquire() as conn:  # no earning endpoint is needed to be premium
        await conn.execute(
            "UPDATE members SET earned_tier = 'premium' WHERE tenant_id = $1 AND member_id = 'm1'", tenant.tenant_id
        )
    assert (await redeem(loyalty_client, tenant, "m1", "r2", "vip")).status_code == 201
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_redemption_is_idempotent_by_its_id_and_listed_under_the_member(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await put_member(loyalty_client, tenant, "m2")
    await give(loyalty_pool, tenant, "m1", 100, None)
    await reward(loyalty_client, tenant, "pen", cost_points=10)

    first = await redeem(loyalty_client, tenant, "m1", "r1", "pen")
    retry = await redeem(loyalty_client, tenant, "m1", "r1", "pen")
    other_body = await redeem(loyalty_client, tenant, "m1", "r1", "pen", quantity=2)
    other_member = await redeem(loyalty_client, tenant, "m2", "r1", "pen")
    assert first.status_code == 201
    assert (retry.status_code, retry.json(), retry.headers["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert (other_body.status_code, other_body.json()["type"]) == (409, "idempotency-conflict")
    assert (other_member.status_code, other_member.json()["type"]) == (409, "idempotency-conflict")
    assert await available(loyalty_client, tenant, "m1") == 90

    read = await loyalty_client.get("/v1/redemptions/r1", headers=tenant.client)
    assert (read.status_code, read.json()) == (200, first.json())
    for n in (2, 3):
        assert (await redeem(loyalty_client, tenant, "m1", f"r{n}", "pen")).status_code == 201
    page = (await loyalty_client.get("/v1/members/m1/redemptions?limit=2", headers=tenant.client)).json()
    rest = (
        await loyalty_client.get(
            f"/v1/members/m1/redemptions?limit=2&cursor={page['next_cursor']}", headers=tenant.client
        )
    ).json()
    listed = [r["redemption_id"] for r in page["items"] + rest["items"]]
    assert sorted(listed) == ["r1", "r2", "r3"] and rest["next_cursor"] is None
    unknown = await loyalty_client.get("/v1/members/ghost/redemptions", headers=tenant.client)
    assert (unknown.status_code, unknown.json()["type"]) == (404, "member-not-found")
    await assert_ledger_ok(loyalty_client, tenant)
