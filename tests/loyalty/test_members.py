"""Members (§5.9): upsert with accounts, the member view (tier and source, balances, expiring points,
qualifying points and the next tier), and the transaction history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.loyalty import accounts
from shared.ledger import Leg, balances, post_entry
from tests.loyalty.conftest import assert_ledger_ok, configure, earn, put_member, qualify


async def test_a_new_member_is_created_then_updated(loyalty_client, loyalty_pool, tenant) -> None:
    body = {"joined_at": "2026-03-01T09:00:00+08:00", "attributes": {"nickname": "Li", "city": "Hangzhou"}}
    created = await loyalty_client.put("/v1/members/m1", json=body, headers=tenant.client)
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["attributes"] == body["attributes"] and member["joined_at"] == "2026-03-01T01:00:00Z"
    assert member["version"] == 1
    assert member["balances"] == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    assert member["expiring"] == []
    assert member["tier"] == {
        "code": "normal",
        "name": "Normal",
        "rank": 0,
        "multiplier_bps": 10000,
        "source": "earned",
        "until": None,
        "earned": {"code": "normal", "since": None},
        "plan": None,
    }
    assert member["qualifying"]["points"] == 0
    assert member["qualifying"]["next_tier"] == {
        "code": "premium",
        "name": "Premium",
        "threshold": 1000,
        "points_needed": 1000,
    }

    same = await loyalty_client.put("/v1/members/m1", json=body, headers=tenant.client)
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = await loyalty_client.put(
        "/v1/members/m1", json={**body, "attributes": {"nickname": "Wang"}}, headers=tenant.client
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert changed.json()["attributes"] == {"nickname": "Wang"}

    async with loyalty_pool.acquire() as conn:
        opened = await balances(conn, tenant.tenant_id, [accounts.points("m1"), accounts.debt("m1")])
        assert set(opened) == {accounts.points("m1"), accounts.debt("m1")}
        events = await conn.fetch("SELECT type FROM events WHERE tenant_id = $1 ORDER BY created_at", tenant.tenant_id)
    assert [e["type"] for e in events] == ["member.registered"]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_unknown_members_and_bad_input(loyalty_client, tenant) -> None:
    missing = await loyalty_client.get("/v1/members/nobody", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "member-not-found")
    history = await loyalty_client.get("/v1/members/nobody/transactions", headers=tenant.client)
    assert (history.status_code, history.json()["type"]) == (404, "member-not-found")
    far = await loyalty_client.put("/v1/members/m1", json={"joined_at": "3001-01-01T00:00:00Z"}, headers=tenant.client)
    assert (far.status_code, far.json()["type"]) == (422, "invalid-timestamp")
    nul = await loyalty_client.put(
        "/v1/members/m1",
        json={"joined_at": "2026-01-01T00:00:00Z", "attributes": {"a": "\u0000"}},
        headers=tenant.client,
    )
    assert (nul.status_code, nul.json()["type"]) == (422, "invalid-json")
    assert (await loyalty_client.put("/v1/members/m1", json={}, headers=tenant.client)).status_code == 400
    assert (await loyalty_client.get("/v1/members/nobody", headers=tenant.client)).status_code == 404


async def test_members_are_per_tenant(loyalty_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    await put_member(loyalty_client, tenant, "m1")
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"c": ["client"]})
    other = {"Authorization": f"Bearer {keys['c']}"}
    assert (await loyalty_client.get("/v1/members/m1", headers=other)).status_code == 404


async def test_the_view_shows_balances_expiring_points_and_the_next_tier(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    now = datetime.now(UTC)
    soon, later = now + timedelta(days=10), now + timedelta(days=90)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        await earn(conn, t, "m1", 70, now - timedelta(days=300), soon)
        await earn(conn, t, "m1", 20, now - timedelta(days=200), soon)
        await earn(conn, t, "m1", 500, now - timedelta(days=1), later)
        await earn(conn, t, "m1", 5, now - timedelta(days=1), None)
        await post_entry(
            conn,
            t,
            kind="earn",
            idempotency_key="pending:1",
            legs=[Leg(accounts.ISSUED, 40), Leg(accounts.pending("m1"), -40)],
        )
        await qualify(conn, t, "m1", 700, now - timedelta(days=400))  # outside the 365-day window
        await qualify(conn, t, "m1", 800, now - timedelta(days=30))
        await qualify(conn, t, "m1", -50, now - timedelta(days=2))  # a refund's reversal

    member = (await loyalty_client.get("/v1/members/m1", headers=tenant.client)).json()
    assert member["balances"] == {"available": 595, "pending": 40, "held": 0, "debt": 0}
    assert [(e["points"], e["expires_at"][:19]) for e in member["expiring"]] == [
        (90, soon.strftime("%Y-%m-%dT%H:%M:%S"))
    ]
    assert member["qualifying"]["points"] == 750
    assert member["qualifying"]["next_tier"]["points_needed"] == 250

    await configure(loyalty_client, tenant, tier_window={"kind": "lifetime"})
    member = (await loyalty_client.get("/v1/members/m1", headers=tenant.client)).json()
    assert member["qualifying"] == {
        "points": 1450,
        "window_start": None,
        "next_tier": {"code": "premium", "name": "Premium", "threshold": 1000, "points_needed": 0},
    }
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_plan_tier_above_the_earned_one_applies_until_the_plan_ends(
    loyalty_client, loyalty_pool, tenant
) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    ends = datetime.now(UTC) + timedelta(days=20)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        # plans and subscriptions have no endpoint yet: rows as the plan code will write them
        await conn.execute(
            "INSERT INTO plans (tenant_id, code, name, duration, price, tier_code) VALUES ($1, 'vip', 'VIP', 'P1M', 990, 'elite')",
            t,
        )
        await conn.execute(
            "INSERT INTO subscriptions (tenant_id, subscription_id, member_id, plan_code, tier_code, duration,"
            " paid_amount, currency, paid_at, starts_at, ends_at)"
            " VALUES ($1, 's1', 'm1', 'vip', 'elite', 'P1M', 990, 'CNY', $2, $2, $3)",
            t,
            ends - timedelta(days=30),
            ends,
        )
    tier = (await loyalty_client.get("/v1/members/m1", headers=tenant.client)).json()["tier"]
    assert (tier["code"], tier["source"], tier["earned"]["code"]) == ("elite", "plan", "normal")
    assert tier["until"] == tier["plan"]["until"] and tier["plan"]["subscription_id"] == "s1"
    assert tier["until"].startswith(ends.strftime("%Y-%m-%dT%H:%M:%S"))


async def test_transactions_newest_first_with_balance_after(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    earned = datetime(2026, 1, 1, tzinfo=UTC)
    async with loyalty_pool.acquire() as conn, conn.transaction():
        for points in (10, 20, 30):
            await earn(conn, t, "m1", points, earned, None)
    first = await loyalty_client.get("/v1/members/m1/transactions", params={"limit": 2}, headers=tenant.client)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [(i["amount"], i["balance_after"], i["kind"], i["reason"]) for i in page["items"]] == [
        (30, 60, "earn", "test"),
        (20, 30, "earn", "test"),
    ]
    assert page["items"][0]["source_ref"].startswith("order:")
    rest = await loyalty_client.get(
        "/v1/members/m1/transactions", params={"limit": 2, "cursor": page["next_cursor"]}, headers=tenant.client
    )
    assert [(i["amount"], i["balance_after"]) for i in rest.json()["items"]] == [(10, 10)]
    assert rest.json()["next_cursor"] is None
    pending = await loyalty_client.get(
        "/v1/members/m1/transactions", params={"account": "pending"}, headers=tenant.client
    )
    assert pending.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("cursor", ["nonsense", "WzEsMiwzXQ", "Wy0xLDFd"])
async def test_a_foreign_cursor_is_400(loyalty_client, tenant, cursor: str) -> None:
    await put_member(loyalty_client, tenant, "m1")
    response = await loyalty_client.get("/v1/members/m1/transactions", params={"cursor": cursor}, headers=tenant.client)
    assert (response.status_code, response.json()["type"]) == (400, "invalid-cursor")
