"""Concurrent requests (§9.3): the same order sent at once earns once; refunds racing each other and the
release job reverse exactly the points; a daily cap holds under concurrent orders."""

from __future__ import annotations

import asyncio

from tests.loyalty.conftest import assert_ledger_ok, put_member
from tests.loyalty.orders.conftest import RELEASE_AT, balances, entries, order_body, place, refund


async def test_the_same_order_sent_at_once_earns_once(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    body = order_body("o-1", "m1", ("a", 5_000))
    replies = await asyncio.gather(
        *(loyalty_client.post("/v1/orders", json=body, headers=tenant.client) for _ in range(8))
    )
    assert {r.status_code for r in replies} == {201}
    assert len({r.content for r in replies}) == 1
    assert await entries(loyalty_pool, tenant, "points.earn") == ["earn:o-1"]
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 50, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_refunds_racing_the_release_reverse_exactly_the_points(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000)))

    async def release() -> int:
        response = await loyalty_client.post(
            "/v1/jobs/release-pending-points", json={"as_of": RELEASE_AT}, headers=tenant.admin
        )
        return response.status_code

    work = [refund(loyalty_client, tenant, "o-1", f"r-{n}", ("a", 1_000)) for n in range(10)]
    replies = await asyncio.gather(*work[:5], release(), *work[5:], release())
    assert [r.status_code for r in replies if not isinstance(r, int)] == [201] * 10
    # Two runs at once: one may find the other holding the job's lock (409 `job-running`).
    assert {r for r in replies if isinstance(r, int)} <= {200, 409}
    assert await release() == 200  # whatever a skipped run left
    view = (await loyalty_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert (view["state"], view["reversed_points"], view["refunded_amount"]) == ("released", 100, 10_000)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_daily_cap_holds_under_concurrent_orders(loyalty_client, tenant) -> None:
    rule = {"name": "daily", "kind": "fixed_per_unit", "points_per_unit": 10, "cap_per_member_day": 25}
    assert (await loyalty_client.put("/v1/earning-rules/daily", json=rule, headers=tenant.admin)).status_code == 201
    await put_member(loyalty_client, tenant, "m1")
    orders = [order_body(f"o-{n}", "m1", {"item_id": "a", "amount": 0, "quantity": 2}) for n in range(8)]
    replies = await asyncio.gather(*(loyalty_client.post("/v1/orders", json=o, headers=tenant.client) for o in orders))
    assert {r.status_code for r in replies} == {201}
    assert sum(r.json()["points"] for r in replies) == 25
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 25, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)
