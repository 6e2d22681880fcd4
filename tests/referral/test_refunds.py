"""Refunds (§6.4): commission reversed pro rata per item and level, from frozen or from available."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure
from tests.referral.test_orders import RELEASE_AT, chain, commission, count_entries, order_body, place, run_release


async def refund(
    client: httpx.AsyncClient, tenant: TenantKeys, order_id: str, refund_id: str, *lines: tuple[str, int]
) -> httpx.Response:
    body = {"refund_id": refund_id, "items": [{"item_id": item, "amount": amount} for item, amount in lines]}
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body, headers=tenant.client)


def rows(view: dict[str, Any], item_id: str) -> dict[int, dict[str, Any]]:
    item = next(i for i in view["items"] if i["item_id"] == item_id)
    return {row["level"]: row for row in item["commissions"]}


async def test_half_refund_before_release_reverses_half_from_frozen(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999)))

    half = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 4999))
    assert half.status_code == 201, half.text
    result = half.json()
    assert result["commission_reversed"] == 499 + 249  # floor(999 × 4999/9999), floor(499 × 4999/9999)
    assert [(r["member_id"], r["amount"], r["from_frozen"]) for r in result["reversals"]] == [
        ("B", 499, 499),
        ("A", 249, 249),
    ]
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 500
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 250

    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert view["refunded_amount"] == 4999 and view["items"][0]["refunded_amount"] == 4999
    assert {level: (r["state"], r["reversed_amount"]) for level, r in rows(view, "sku-1").items()} == {
        1: ("frozen", 499),
        2: ("frozen", 249),
    }
    assert [(r["refund_id"], r["amount"]) for r in view["refunds"]] == [("r-1", 4999)]
    await assert_ledger_ok(referral_client, tenant)

    # The rest of the item: exactly everything is reversed, nothing drifts.
    rest = await refund(referral_client, tenant, "o-1", "r-2", ("sku-1", 5000))
    assert rest.status_code == 201 and rest.json()["commission_reversed"] == 500 + 250
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert {r["state"] for r in rows(view, "sku-1").values()} == {"reversed"}
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 0
    assert (await run_release(referral_client, tenant, "2030-01-01T00:00:00Z"))["processed"] == 0
    buyer = (await referral_client.get("/v1/members/C", headers=tenant.client)).json()
    assert (buyer["order_count"], buyer["paid_amount"]) == (1, 0)
    await assert_ledger_ok(referral_client, tenant)


async def test_refund_after_release_takes_from_available(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 10000), ("sku-2", 2000)))
    await run_release(referral_client, tenant, RELEASE_AT)
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 0,
        "available": 1200,
        "withdrawing": 0,
        "debt": 0,
    }

    response = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 5000))
    assert response.status_code == 201, response.text
    assert [(r["member_id"], r["from_available"], r["to_debt"]) for r in response.json()["reversals"]] == [
        ("B", 500, 0),
        ("A", 250, 0),
    ]
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 0,
        "available": 700,
        "withdrawing": 0,
        "debt": 0,
    }
    assert (await commission(referral_client, tenant, "A"))["available"] == 350
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert rows(view, "sku-1")[1]["state"] == "released" and rows(view, "sku-1")[1]["reversed_amount"] == 500
    await assert_ledger_ok(referral_client, tenant)


async def test_refund_refusals_write_nothing(referral_client, tenant, database_url) -> None:
    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 1000), ("sku-2", 500)))

    too_much = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 600), ("sku-2", 501))
    unknown_item = await refund(referral_client, tenant, "o-1", "r-2", ("sku-9", 1))
    twice = await refund(referral_client, tenant, "o-1", "r-3", ("sku-1", 1), ("sku-1", 1))
    unknown_order = await refund(referral_client, tenant, "o-9", "r-4", ("sku-1", 1))
    zero = await refund(referral_client, tenant, "o-1", "r-5", ("sku-1", 0))
    assert (too_much.status_code, too_much.json()["type"]) == (422, "refund-exceeds-paid")
    assert (unknown_item.status_code, unknown_item.json()["type"]) == (422, "unknown-item")
    assert (twice.status_code, twice.json()["type"]) == (422, "duplicate-item")
    assert (unknown_order.status_code, unknown_order.json()["type"]) == (404, "order-not-found")
    assert zero.status_code == 400

    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert view["refunded_amount"] == 0 and view["refunds"] == []
    assert {r["reversed_amount"] for i in view["items"] for r in i["commissions"]} == {0}
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 150
    assert await count_entries(database_url, tenant, "commission.reverse") == 0
    # Refused is refused for that id (pinned), even once the amount would fit.
    again = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 600), ("sku-2", 501))
    assert (again.status_code, again.content) == (422, too_much.content)
    await assert_ledger_ok(referral_client, tenant)


async def test_refund_is_idempotent_by_refund_id(referral_client, tenant, database_url) -> None:
    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 1000)))
    await place(referral_client, tenant, order_body("o-2", "B", ("sku-1", 1000)))

    first = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 400))
    again = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 400))
    other_body = await refund(referral_client, tenant, "o-1", "r-1", ("sku-1", 300))
    other_order = await refund(referral_client, tenant, "o-2", "r-1", ("sku-1", 400))
    assert first.status_code == 201 and (again.status_code, again.content) == (201, first.content)
    assert other_body.status_code == other_order.status_code == 409
    assert other_order.json()["type"] == "idempotency-conflict"
    assert (await commission(referral_client, tenant, "A"))["frozen"] == 200 - 40
    assert await count_entries(database_url, tenant, "commission.reverse") == 1
    await assert_ledger_ok(referral_client, tenant)


async def test_refund_of_an_item_without_commission_moves_no_money(referral_client, tenant, database_url) -> None:
    await chain(referral_client, tenant, "A", "B")
    await configure(referral_client, tenant, excluded_categories=["gift"])
    await place(
        referral_client,
        tenant,
        order_body("o-1", "B", {"item_id": "card", "category": "gift", "amount": 800, "quantity": 1}),
    )
    response = await refund(referral_client, tenant, "o-1", "r-1", ("card", 800))
    assert response.status_code == 201 and response.json()["commission_reversed"] == 0
    assert response.json()["reversals"] == []
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert view["refunded_amount"] == 800 and view["commission_amount"] == 0
    assert await count_entries(database_url, tenant, "commission.reverse") == 0
    await assert_ledger_ok(referral_client, tenant)


async def test_small_partial_refunds_add_up_to_the_full_commission(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 997)))  # A earns 99
    for n in range(7):
        assert (await refund(referral_client, tenant, "o-1", f"r-{n}", ("sku-1", 100))).status_code == 201
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert rows(view, "sku-1")[1]["reversed_amount"] == 99 * 700 // 997
    assert (await refund(referral_client, tenant, "o-1", "r-last", ("sku-1", 297))).status_code == 201
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert rows(view, "sku-1")[1]["state"] == "reversed"
    assert await commission(referral_client, tenant, "A") == {"frozen": 0, "available": 0, "withdrawing": 0, "debt": 0}
    await assert_ledger_ok(referral_client, tenant)


async def test_refunds_racing_the_release_job_neither_deadlock_nor_double(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    items = [(f"sku-{n}", 1000) for n in range(12)]
    for n in range(4):
        await place(referral_client, tenant, order_body(f"o-{n}", "C", *items))
    await run_release(referral_client, tenant, RELEASE_AT, batch_size=5, max_batches=3)  # some released

    refunds = [
        refund(referral_client, tenant, f"o-{n}", f"r-{n}-{i}", (item, 500))
        for n in range(4)
        for i, (item, _) in enumerate(items)
    ]
    job = run_release(referral_client, tenant, RELEASE_AT, batch_size=3)
    *responses, _ = await asyncio.gather(*refunds, job)
    assert {r.status_code for r in responses} == {201}
    # Rows a refund held were skipped, not waited for: the next run (the scheduler's) takes them.
    await run_release(referral_client, tenant, RELEASE_AT)
    assert (await run_release(referral_client, tenant, RELEASE_AT))["processed"] == 0
    # Half of every item refunded: each level keeps exactly half of its commission, all released.
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 0,
        "available": 4 * 12 * 50,
        "withdrawing": 0,
        "debt": 0,
    }
    assert (await commission(referral_client, tenant, "A"))["available"] == 4 * 12 * 25
    await assert_ledger_ok(referral_client, tenant)


async def test_orders_and_refunds_of_one_buyer_racing_neither_deadlock_nor_lose_statistics(
    referral_client, tenant
) -> None:
    """Both take the chain's accounts, then the buyer's row (the lock order): all succeed, nothing is lost."""
    await chain(referral_client, tenant, "A", "B", "C")
    for n in range(4):
        await place(referral_client, tenant, order_body(f"o-{n}", "C", ("sku-1", 1000), ("sku-2", 1000)))
    await run_release(referral_client, tenant, RELEASE_AT)  # refunds now take from available

    orders = [
        referral_client.post("/v1/orders", json=order_body(f"n-{n}", "C", ("sku-1", 1000)), headers=tenant.client)
        for n in range(8)
    ]
    refunds = [refund(referral_client, tenant, f"o-{n}", f"r-{n}", ("sku-1", 1000)) for n in range(4)]
    responses = await asyncio.gather(*orders, *refunds)
    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses if r.status_code != 201]

    assert await commission(referral_client, tenant, "B") == {
        "frozen": 8 * 100,
        "available": 4 * 200 - 4 * 100,
        "withdrawing": 0,
        "debt": 0,
    }
    assert await commission(referral_client, tenant, "A") == {
        "frozen": 8 * 50,
        "available": 4 * 100 - 4 * 50,
        "withdrawing": 0,
        "debt": 0,
    }
    buyer = (await referral_client.get("/v1/members/C", headers=tenant.client)).json()
    assert (buyer["order_count"], buyer["paid_amount"]) == (12, 4 * 2000 + 8 * 1000 - 4 * 1000)
    await assert_ledger_ok(referral_client, tenant)
