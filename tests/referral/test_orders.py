"""Orders and commission accrual (§6.4): the chain snapshot, the rates, the idempotent order write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register

PAID_AT = "2026-03-01T10:00:00+08:00"
RELEASE_AT = "2026-03-08T02:00:00Z"  # paid_at + 7 days, in UTC


# ---------------------------------------------------------------- helpers (also used by the other files)


@asynccontextmanager
async def referral_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "referral"})
    try:
        yield conn
    finally:
        await conn.close()


async def join(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, inviter: str | None = None) -> None:
    """Register `member_id` over HTTP, invited by `inviter` (with the inviter's invite code)."""
    code = None
    if inviter is not None:
        found = await client.get(f"/v1/members/{inviter}", headers=tenant.client)
        assert found.status_code == 200, found.text
        code = found.json()["invite_code"]
    await register(client, tenant, member_id, invite_code=code)


async def chain(client: httpx.AsyncClient, tenant: TenantKeys, *member_ids: str) -> None:
    """Register the members in order, each invited by the one before: chain(A, B, C) = C → B → A."""
    code = None
    for member_id in member_ids:
        code = (await register(client, tenant, member_id, invite_code=code))["invite_code"]


async def commission(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, int]:
    """The member's commission balances as GET /v1/members/{id} shows them."""
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    shown = response.json()["balances"]
    return {name: shown[name] for name in ("frozen", "available", "withdrawing", "debt")}


async def count_entries(database_url: str, tenant: TenantKeys, kind: str) -> int:
    async with referral_db(database_url) as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM entries WHERE tenant_id = $1 AND kind = $2", tenant.tenant_id, kind
        )


def order_body(order_id: str, buyer_id: str, *items: tuple[str, int] | dict[str, Any], **extra: Any) -> dict[str, Any]:
    lines = [
        item if isinstance(item, dict) else {"item_id": item[0], "amount": item[1], "quantity": 1} for item in items
    ]
    return {"order_id": order_id, "buyer_id": buyer_id, "currency": "CNY", "items": lines, "paid_at": PAID_AT} | extra


async def place(client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/orders", json=body, headers=tenant.client)
    assert response.status_code == 201, response.text
    return response.json()


def paid(view: dict[str, Any]) -> dict[tuple[str, int], tuple[str, int]]:
    """(item, level) -> (member, amount) of an order view's commission rows."""
    return {
        (item["item_id"], row["level"]): (row["member_id"], row["amount"])
        for item in view["items"]
        for row in item["commissions"]
    }


# ---------------------------------------------------------------- tests


async def test_two_levels_accrue_frozen_until_release(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    view = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999)))

    assert paid(view) == {("sku-1", 1): ("B", 999), ("sku-1", 2): ("A", 499)}
    assert view["commission_amount"] == 1498 and view["total_amount"] == 9999
    assert view["chain"] == [
        {"level": 1, "member_id": "B", "level_code": None, "rate_bps": 1000, "skipped_reason": None},
        {"level": 2, "member_id": "A", "level_code": None, "rate_bps": 500, "skipped_reason": None},
    ]
    rows = view["items"][0]["commissions"]
    assert {(r["state"], r["release_at"]) for r in rows} == {("frozen", RELEASE_AT)}
    assert view["rule_version"] == 0 and view["paid_at"] == "2026-03-01T02:00:00Z"
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 999,
        "available": 0,
        "withdrawing": 0,
        "debt": 0,
    }
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 499
    assert (await commission(referral_client, tenant, "C"))["frozen"] == 0

    read = await referral_client.get("/v1/orders/o-1", headers=tenant.client)
    assert read.status_code == 200 and read.json() == view and read.headers["etag"]
    await assert_ledger_ok(referral_client, tenant)


async def test_replay_returns_the_first_result_and_another_body_conflicts(
    referral_client, tenant, database_url
) -> None:
    await chain(referral_client, tenant, "A", "B")
    body = order_body("o-1", "B", ("sku-1", 5000))
    first = await referral_client.post("/v1/orders", json=body, headers=tenant.client)
    again = await referral_client.post("/v1/orders", json=body, headers=tenant.client)
    other = await referral_client.post(
        "/v1/orders", json=order_body("o-1", "B", ("sku-1", 6000)), headers=tenant.client
    )
    assert first.status_code == 201 and (again.status_code, again.content) == (201, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.json()["type"] == "idempotency-conflict"
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 500
    assert await count_entries(database_url, tenant, "commission.accrue") == 1
    await assert_ledger_ok(referral_client, tenant)


async def test_refusals_write_nothing(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")

    async def refused(body: dict[str, Any]) -> tuple[int, str]:
        response = await referral_client.post("/v1/orders", json=body, headers=tenant.client)
        assert response.headers["content-type"] == "application/problem+json"
        return response.status_code, response.json()["type"]

    assert await refused(order_body("o-1", "nobody", ("x", 100))) == (404, "member-not-found")
    assert await refused(order_body("o-2", "B", ("x", 100), currency="USD")) == (422, "currency-mismatch")
    assert await refused(order_body("o-3", "B", ("x", 100), ("x", 200))) == (422, "duplicate-item")
    assert await refused(order_body("o-4", "B", paid_at="2099-01-01T00:00:00Z")) == (400, "invalid-request")
    assert await refused(order_body("o-4", "B", ("x", 100), paid_at="2099-01-01T00:00:00Z")) == (
        422,
        "paid-at-in-future",
    )
    assert await refused(order_body("o-5", "B", ("x", -1))) == (400, "invalid-request")
    assert await refused(order_body("o-6", "B", ("x", 100), paid_at="2026-03-01T10:00:00")) == (400, "invalid-request")
    assert await refused(order_body("o-6", "B", ("x", 100), paid_at="0001-01-01T00:00:00+14:00")) == (
        422,
        "paid-at-out-of-range",
    )
    for order_id in ("o-1", "o-2", "o-3", "o-4", "o-5", "o-6"):
        missing = await referral_client.get(f"/v1/orders/{order_id}", headers=tenant.client)
        assert missing.status_code == 404 and missing.json()["type"] == "order-not-found"
    assert await commission(referral_client, tenant, "A") == {"frozen": 0, "available": 0, "withdrawing": 0, "debt": 0}

    # An unknown buyer is not remembered: once registered, the same order goes through.
    await join(referral_client, tenant, "nobody", "A")
    view = await place(referral_client, tenant, order_body("o-1", "nobody", ("x", 100)))
    assert paid(view) == {("x", 1): ("A", 10)}
    # A refusal inside the write is pinned: the same body gets the same answer.
    assert await refused(order_body("o-2", "B", ("x", 100), currency="USD")) == (422, "currency-mismatch")
    await assert_ledger_ok(referral_client, tenant)


async def test_orders_are_invisible_to_other_tenants(referral_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("x", 100)))
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="x"), {"c": ["client"]})
    other = {"Authorization": f"Bearer {keys['c']}"}
    read = await referral_client.get("/v1/orders/o-1", headers=other)
    refund = await referral_client.post(
        "/v1/orders/o-1/refunds", json={"refund_id": "r-1", "items": [{"item_id": "x", "amount": 1}]}, headers=other
    )
    assert read.status_code == refund.status_code == 404
    await assert_ledger_ok(referral_client, tenant)


async def test_suspended_ancestor_is_skipped_and_recorded(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await set_distributor(referral_client, tenant, "B", "suspended")
    view = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999)))

    assert paid(view) == {("sku-1", 2): ("A", 499)}  # no compression: A stays L2
    assert view["chain"][0] == {
        "level": 1,
        "member_id": "B",
        "level_code": None,
        "rate_bps": 0,
        "skipped_reason": "suspended",
    }
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 0
    await assert_ledger_ok(referral_client, tenant)


async def test_under_approved_only_active_distributors_earn(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await configure(referral_client, tenant, eligibility="approved")
    await set_distributor(referral_client, tenant, "B", "active")
    view = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 10000)))

    assert paid(view) == {("sku-1", 1): ("B", 1000)}
    assert [(link["member_id"], link["skipped_reason"]) for link in view["chain"]] == [
        ("B", None),
        ("A", "not-approved"),
    ]
    assert view["rule_version"] == 1
    await assert_ledger_ok(referral_client, tenant)


async def test_category_override_and_exclusion(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await configure(referral_client, tenant, category_rates_bps={"books": [2000, 300]}, excluded_categories=["gift"])
    view = await place(
        referral_client,
        tenant,
        order_body(
            "o-1",
            "C",
            {"item_id": "novel", "category": "books", "amount": 3333, "quantity": 2},
            {"item_id": "card", "category": "gift", "amount": 5000, "quantity": 1},
            {"item_id": "pen", "category": "office", "amount": 1000, "quantity": 1},
        ),
    )
    assert paid(view) == {
        ("novel", 1): ("B", 666),  # floor(3333 × 20 %)
        ("novel", 2): ("A", 99),  # floor(3333 × 3 %)
        ("pen", 1): ("B", 100),
        ("pen", 2): ("A", 50),
    }
    assert [item["item_id"] for item in view["items"]] == ["card", "novel", "pen"]
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 766
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 149
    await assert_ledger_ok(referral_client, tenant)


async def test_distributor_level_rates_apply_to_its_members(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await put_level(referral_client, tenant, "gold", [1500, 800])
    await set_distributor(referral_client, tenant, "B", "active", "gold")
    view = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 10000)))

    assert paid(view) == {("sku-1", 1): ("B", 1500), ("sku-1", 2): ("A", 500)}
    assert view["chain"][0]["level_code"] == "gold" and view["chain"][0]["rate_bps"] == 1500
    await assert_ledger_ok(referral_client, tenant)


async def test_self_purchase_makes_the_buyer_level_one(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await configure(referral_client, tenant, self_purchase_commission=True)
    view = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999)))

    assert paid(view) == {("sku-1", 1): ("C", 999), ("sku-1", 2): ("B", 499)}  # depth 2: A is L3, unpaid
    assert [link["member_id"] for link in view["chain"]] == ["C", "B"]
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 0
    await assert_ledger_ok(referral_client, tenant)


async def test_three_levels_and_buyer_statistics(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C", "D")
    await configure(referral_client, tenant, depth=3, level_rates_bps=[1000, 500, 200])
    view = await place(referral_client, tenant, order_body("o-1", "D", ("a", 2000), ("b", 3000)))
    assert paid(view) == {
        ("a", 1): ("C", 200),
        ("a", 2): ("B", 100),
        ("a", 3): ("A", 40),
        ("b", 1): ("C", 300),
        ("b", 2): ("B", 150),
        ("b", 3): ("A", 60),
    }
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 100
    buyer = (await referral_client.get("/v1/members/D", headers=tenant.client)).json()
    assert (buyer["order_count"], buyer["paid_amount"]) == (1, 5000)
    await assert_ledger_ok(referral_client, tenant)


async def test_freeze_from_received(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")
    await configure(referral_client, tenant, freeze_from="received")
    view = await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 10000)))
    assert view["items"][0]["commissions"][0]["release_at"] is None

    nothing = await run_release(referral_client, tenant, "2030-01-01T00:00:00Z")
    assert nothing["processed"] == 0

    received = {"received_at": "2026-03-03T12:00:00+08:00"}
    first = await referral_client.post("/v1/orders/o-1/received", json=received, headers=tenant.client)
    assert first.status_code == 200, first.text
    assert first.json()["received_at"] == "2026-03-03T04:00:00Z"
    assert first.json()["items"][0]["commissions"][0]["release_at"] == "2026-03-10T04:00:00Z"
    again = await referral_client.post("/v1/orders/o-1/received", json=received, headers=tenant.client)
    assert again.status_code == 200 and again.json() == first.json()
    other = await referral_client.post(
        "/v1/orders/o-1/received", json={"received_at": "2026-03-04T12:00:00+08:00"}, headers=tenant.client
    )
    assert other.status_code == 409 and other.json()["type"] == "already-received"

    assert (await run_release(referral_client, tenant, "2026-03-10T03:59:59Z"))["processed"] == 0
    assert (await run_release(referral_client, tenant, "2026-03-10T04:00:00Z"))["processed"] == 1
    assert (await commission(referral_client, tenant, "A"))["available"] == 1000
    await assert_ledger_ok(referral_client, tenant)


async def test_a_receipt_counts_the_freeze_days_the_order_was_paid_under(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")
    await configure(referral_client, tenant, freeze_from="received", freeze_days=7)
    await place(referral_client, tenant, order_body("o-7", "B", ("sku-1", 10000)))
    await configure(referral_client, tenant, freeze_from="received", freeze_days=30)
    await place(referral_client, tenant, order_body("o-30", "B", ("sku-1", 10000)))

    received = {"received_at": "2026-03-03T12:00:00+08:00"}
    views = {}
    for order_id in ("o-7", "o-30"):
        response = await referral_client.post(f"/v1/orders/{order_id}/received", json=received, headers=tenant.client)
        assert response.status_code == 200, response.text
        views[order_id] = response.json()["items"][0]["commissions"][0]["release_at"]
    assert views == {"o-7": "2026-03-10T04:00:00Z", "o-30": "2026-04-02T04:00:00Z"}
    assert (await run_release(referral_client, tenant, "2026-03-10T04:00:00Z"))["processed"] == 1
    assert (await commission(referral_client, tenant, "A")) == {
        "frozen": 1000,
        "available": 1000,
        "withdrawing": 0,
        "debt": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_receipt_under_freeze_from_paid_is_only_recorded(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 10000)))
    early = await referral_client.post(
        "/v1/orders/o-1/received", json={"received_at": "2026-02-28T00:00:00Z"}, headers=tenant.client
    )
    assert early.status_code == 422 and early.json()["type"] == "received-before-paid"
    unknown = await referral_client.post(
        "/v1/orders/nope/received", json={"received_at": "2026-03-02T00:00:00Z"}, headers=tenant.client
    )
    assert unknown.status_code == 404 and unknown.json()["type"] == "order-not-found"
    response = await referral_client.post(
        "/v1/orders/o-1/received", json={"received_at": "2026-03-02T00:00:00Z"}, headers=tenant.client
    )
    assert response.status_code == 200
    assert response.json()["received_at"] == "2026-03-02T00:00:00Z"
    assert response.json()["items"][0]["commissions"][0]["release_at"] == RELEASE_AT
    await assert_ledger_ok(referral_client, tenant)


async def test_rebinding_leaves_earlier_orders_unchanged(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await join(referral_client, tenant, "D")
    await configure(referral_client, tenant, binding={"mode": "override"})
    before = await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 10000)))

    rebound = await referral_client.post(
        "/v1/bindings",
        json={"invitee_id": "C", "inviter_id": "D", "occurred_at": "2026-03-02T00:00:00Z"},
        headers=tenant.client,
    )
    assert rebound.status_code in (200, 201), rebound.text
    after = await place(referral_client, tenant, order_body("o-2", "C", ("sku-1", 10000)))

    assert paid(after) == {("sku-1", 1): ("D", 1000)}
    read = await referral_client.get("/v1/orders/o-1", headers=tenant.client)
    assert read.json()["chain"] == before["chain"] and paid(read.json()) == paid(before)
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 1000
    await assert_ledger_ok(referral_client, tenant)


# ---------------------------------------------------------------- more helpers


async def run_release(client: httpx.AsyncClient, tenant: TenantKeys, as_of: str, **options: Any) -> dict[str, Any]:
    response = await client.post("/v1/jobs/release-commission", json={"as_of": as_of, **options}, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def set_distributor(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, status: str, level_code: str | None = None
) -> None:
    response = await client.put(
        f"/v1/distributors/{member_id}", json={"status": status, "level_code": level_code}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text


async def put_level(client: httpx.AsyncClient, tenant: TenantKeys, code: str, rates: list[int]) -> None:
    response = await client.put(
        f"/v1/distributor-levels/{code}", json={"name": code, "rank": 1, "rates_bps": rates}, headers=tenant.admin
    )
    assert response.status_code in (200, 201), response.text
