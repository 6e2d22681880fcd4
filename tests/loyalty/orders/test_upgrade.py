"""Immediate upgrade (§5.2): an order whose points cross a threshold raises the earned tier at once, with
a history row and `member.tier_changed`; a refund lowers qualifying points but never the tier."""

from __future__ import annotations

from tests.loyalty.conftest import assert_ledger_ok, configure, put_member
from tests.loyalty.orders.conftest import LIFETIME, events, order_body, place, refund


async def _member(client, tenant, member_id: str) -> dict:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    result: dict = response.json()
    return result


async def test_an_order_crossing_the_premium_threshold_upgrades_at_once(loyalty_client, loyalty_pool, tenant) -> None:
    await configure(loyalty_client, tenant, tier_window=LIFETIME)
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 99_900)))  # 999 points
    assert (await _member(loyalty_client, tenant, "m1"))["tier"]["earned"]["code"] == "normal"
    assert await events(loyalty_pool, tenant, "member.tier_changed") == []

    await place(loyalty_client, tenant, order_body("o-2", "m1", ("a", 100)))  # 1 more: 1000
    member = await _member(loyalty_client, tenant, "m1")
    assert member["tier"]["earned"]["code"] == "premium" and member["tier"]["code"] == "premium"
    assert member["qualifying"]["points"] == 1000
    (changed,) = await events(loyalty_pool, tenant, "member.tier_changed")
    assert (changed["from_tier"], changed["to_tier"], changed["direction"]) == ("normal", "premium", "up")
    async with loyalty_pool.acquire() as conn:
        history = await conn.fetch(
            "SELECT from_tier, to_tier, source, reason FROM tier_history WHERE tenant_id = $1 AND member_id = 'm1'",
            tenant.tenant_id,
        )
    assert [tuple(row) for row in history] == [("normal", "premium", "earned", "upgrade")]

    # The next order earns at premium's multiplier, snapshotted on the order.
    third = await place(loyalty_client, tenant, order_body("o-3", "m1", ("a", 100)))
    assert third["tier_code"] == "premium"

    # A refund drops qualifying points; only the evaluation job may downgrade.
    assert (await refund(loyalty_client, tenant, "o-2", "r-1", ("a", 100))).status_code == 201
    member = await _member(loyalty_client, tenant, "m1")
    assert (member["tier"]["earned"]["code"], member["qualifying"]["points"]) == ("premium", 1000)
    await assert_ledger_ok(loyalty_client, tenant)
