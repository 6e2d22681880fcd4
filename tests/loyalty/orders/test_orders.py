"""Earning from purchases (§5.4): points per order and item, pending, the snapshot, idempotency, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.loyalty.conftest import assert_ledger_ok, configure, put_member
from tests.loyalty.orders.conftest import LIFETIME, RELEASE_AT, balances, events, order_body, place, refund


async def test_open_loyalty_worked_example(loyalty_client, tenant) -> None:
    """A 40.00 basket that earned 70 points; a refund of 20.00 reverses 35."""
    await configure(loyalty_client, tenant, earn_points=175, earn_per_amount=10_000)
    await put_member(loyalty_client, tenant, "m1")
    order = await place(loyalty_client, tenant, order_body("o-1", "m1", ("basket", 4000)))
    assert (order["points"], order["items"][0]["points"], order["state"]) == (70, 70, "pending")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 70, "held": 0, "debt": 0}

    response = await refund(loyalty_client, tenant, "o-1", "r-1", ("basket", 2000))
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["refund"]["points_reversed"], result["from_pending"]) == (35, 35)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 35, "held": 0, "debt": 0}

    view = (await loyalty_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert (view["refunded_amount"], view["reversed_points"]) == (2000, 35)
    assert view["items"][0] == {
        "item_id": "basket",
        "sku": None,
        "category": None,
        "amount": 4000,
        "quantity": 1,
        "points": 70,
        "refunded_amount": 2000,
        "reversed_points": 35,
        "rule_codes": [],
    }
    assert [r["refund_id"] for r in view["refunds"]] == ["r-1"]
    assert view["refunds"][0]["items"] == [{"item_id": "basket", "amount": 2000, "points_reversed": 35}]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_points_are_split_over_items_exactly_and_the_order_snapshots_its_rules(loyalty_client, tenant) -> None:
    await configure(loyalty_client, tenant, earn_points=175, earn_per_amount=10_000)
    await put_member(loyalty_client, tenant, "m1")
    order = await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 2500), ("b", 1500), ("c", 0)))
    # 43.75 + 26.25 + 0 = 70: floors 43 and 26, the spare point to the larger remainder
    assert {i["item_id"]: i["points"] for i in order["items"]} == {"a": 44, "b": 26, "c": 0}
    assert order["points"] == 70
    assert (order["rule_version"], order["tier_code"], order["multiplier_bps"]) == (1, "normal", 10_000)
    assert order["pending_until"] == RELEASE_AT
    # the default expiry (end of the 12th month after the earning month) from paid_at, tenant-local
    assert order["lot_expires_at"] == "2027-03-31T16:00:00Z"
    assert order["total_amount"] == 4000 and order["released_at"] is None
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_tier_multiplier_applies_and_the_earning_is_an_event(loyalty_client, loyalty_pool, tenant) -> None:
    tier = {"name": "Normal", "rank": 0, "threshold": 0, "multiplier_bps": 15_000}
    assert (await loyalty_client.put("/v1/tiers/normal", json=tier, headers=tenant.admin)).status_code == 200
    await put_member(loyalty_client, tenant, "m1")
    order = await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 999)))
    assert (order["points"], order["multiplier_bps"]) == (14, 15_000)  # floor(9.99 × 1.5)
    (earned,) = await events(loyalty_pool, tenant, "points.earned")
    assert {k: earned[k] for k in ("member_id", "order_id", "points", "state", "pending_until", "tier_code")} == {
        "member_id": "m1",
        "order_id": "o-1",
        "points": 14,
        "state": "pending",
        "pending_until": RELEASE_AT,
        "tier_code": "normal",
    }
    await assert_ledger_ok(loyalty_client, tenant)


async def test_without_pending_days_points_are_available_at_once(loyalty_client, tenant) -> None:
    await configure(loyalty_client, tenant, pending_days=0, tier_window=LIFETIME)
    await put_member(loyalty_client, tenant, "m1")
    order = await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 12_345)))
    assert (order["points"], order["state"], order["released_at"]) == (123, "released", "2026-03-01T02:00:00Z")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 123, "pending": 0, "held": 0, "debt": 0}
    member = (await loyalty_client.get("/v1/members/m1", headers=tenant.client)).json()
    assert member["qualifying"]["points"] == 123
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_replay_returns_the_same_and_another_body_conflicts(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    body = order_body("o-1", "m1", ("a", 5000))
    first = await loyalty_client.post("/v1/orders", json=body, headers=tenant.client)
    again = await loyalty_client.post("/v1/orders", json=body, headers=tenant.client)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 50, "held": 0, "debt": 0}

    other = await loyalty_client.post("/v1/orders", json=order_body("o-1", "m1", ("a", 6000)), headers=tenant.client)
    assert (other.status_code, other.json()["type"]) == (409, "idempotency-conflict")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 50, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_refusals_write_nothing(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    cases = [
        (order_body("o-1", "ghost", ("a", 100)), 404, "member-not-found"),
        (order_body("o-2", "m1", ("a", 100), currency="USD"), 422, "currency-mismatch"),
        (order_body("o-3", "m1", ("a", 100), ("a", 200)), 422, "duplicate-item"),
        (order_body("o-4", "m1", ("a", 100), paid_at=soon), 422, "paid-at-in-future"),
        (order_body("o-5", "m1", ("a", 100), paid_at="1969-12-31T23:59:59Z"), 422, "invalid-timestamp"),
        (order_body("o-6", "m1", ("a", 2**53), ("b", 1)), 422, "amount-too-large"),
    ]
    for body, status, problem in cases:
        response = await loyalty_client.post("/v1/orders", json=body, headers=tenant.client)
        assert (response.status_code, response.json()["type"]) == (status, problem), body
    missing = await loyalty_client.get("/v1/orders/o-2", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "order-not-found")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}

    # An unknown member is not pinned: once registered, the same order goes through.
    await put_member(loyalty_client, tenant, "ghost")
    assert (await place(loyalty_client, tenant, order_body("o-1", "ghost", ("a", 100))))["points"] == 1
    # A pinned refusal answers the same again.
    again = await loyalty_client.post(
        "/v1/orders", json=order_body("o-2", "m1", ("a", 100), currency="USD"), headers=tenant.client
    )
    assert (again.status_code, again.json()["type"]) == (422, "currency-mismatch")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_another_tenant_sees_nothing(loyalty_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn
    from tests.conftest import TenantKeys

    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 100)))
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"client": ["client"]})
    other = TenantKeys(tenant.tenant_id + "x", keys["client"], keys["client"])
    assert (await loyalty_client.get("/v1/orders/o-1", headers=other.client)).status_code == 404
    assert (await refund(loyalty_client, other, "o-1", "r-1", ("a", 100))).status_code == 404
    await assert_ledger_ok(loyalty_client, tenant)
