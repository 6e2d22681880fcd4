"""Refunds (§5.4): pro rata per item, from pending first, then available, then debt (or written off
under `cap`); qualifying points drop too; over-refunds refused; idempotent by refund_id."""

from __future__ import annotations

from tests.loyalty.conftest import assert_ledger_ok, configure, put_member
from tests.loyalty.orders.conftest import (
    LIFETIME,
    RELEASE_AT,
    balances,
    events,
    order_body,
    place,
    refund,
    run_release,
    spend,
)


async def _qualifying(client, tenant, member_id: str) -> int:
    member = (await client.get(f"/v1/members/{member_id}", headers=tenant.client)).json()
    points: int = member["qualifying"]["points"]
    return points


async def test_a_refund_before_release_takes_from_pending(loyalty_client, loyalty_pool, tenant) -> None:
    await configure(loyalty_client, tenant, tier_window=LIFETIME)
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000), ("b", 5_000)))
    response = await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 2_500))
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["from_pending"], result["from_available"], result["to_debt"]) == (25, 0, 0)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 125, "held": 0, "debt": 0}
    assert await _qualifying(loyalty_client, tenant, "m1") == 125
    (reversed_,) = await events(loyalty_pool, tenant, "points.reversed")
    assert (reversed_["refund_id"], reversed_["points"], reversed_["from_pending"]) == ("r-1", 25, 25)

    await run_release(loyalty_client, tenant, RELEASE_AT)  # releases what is left: 125
    assert await balances(loyalty_client, tenant, "m1") == {"available": 125, "pending": 0, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_refund_after_release_takes_from_available(loyalty_client, tenant) -> None:
    await configure(loyalty_client, tenant, tier_window=LIFETIME)
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000)))
    await run_release(loyalty_client, tenant, RELEASE_AT)
    result = (await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 3_333))).json()
    assert (result["refund"]["points_reversed"], result["from_available"], result["to_debt"]) == (33, 33, 0)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 67, "pending": 0, "held": 0, "debt": 0}
    # the rest: cumulative floor(100 × 10000 / 10000) − 33 = 67, exactly what is left
    result = (await refund(loyalty_client, tenant, "o-1", "r-2", ("a", 6_667))).json()
    assert result["refund"]["points_reversed"] == 67
    assert result["order"]["reversed_points"] == 100 and result["order"]["refunded_amount"] == 10_000
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    assert await _qualifying(loyalty_client, tenant, "m1") == 0
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_refund_after_the_points_were_spent_books_debt_repaid_by_the_next_release(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000)))
    await run_release(loyalty_client, tenant, RELEASE_AT)
    await spend(loyalty_pool, tenant, "m1", 80)

    result = (await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 10_000))).json()
    assert (result["from_available"], result["to_debt"], result["written_off"]) == (20, 80, 0)
    assert result["refund"]["debt_points"] == 80
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 80}
    await assert_ledger_ok(loyalty_client, tenant)

    # The next earning's release pays the debt first, the rest becomes available.
    await place(loyalty_client, tenant, order_body("o-2", "m1", ("a", 15_000), paid_at="2026-03-02T10:00:00+08:00"))
    await run_release(loyalty_client, tenant, "2026-03-09T02:00:00Z")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 70, "pending": 0, "held": 0, "debt": 0}
    released = [e for e in await events(loyalty_pool, tenant, "points.released") if e["order_id"] == "o-2"]
    assert (released[0]["debt_repaid"], released[0]["available"]) == (80, 70)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_under_cap_the_shortfall_is_written_off(loyalty_client, loyalty_pool, tenant) -> None:
    await configure(loyalty_client, tenant, negative_balance="cap", tier_window=LIFETIME)
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000)))
    await run_release(loyalty_client, tenant, RELEASE_AT)
    await spend(loyalty_pool, tenant, "m1", 90)

    result = (await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 5_000))).json()
    assert (result["from_available"], result["to_debt"], result["written_off"]) == (10, 0, 40)
    assert (result["refund"]["points_reversed"], result["refund"]["written_off"]) == (50, 40)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    # A written-off point is still reversed: a later refund does not try to take it again.
    result = (await refund(loyalty_client, tenant, "o-1", "r-2", ("a", 5_000))).json()
    assert (result["refund"]["points_reversed"], result["written_off"]) == (50, 50)
    assert result["order"]["reversed_points"] == 100
    assert await _qualifying(loyalty_client, tenant, "m1") == 0
    await assert_ledger_ok(loyalty_client, tenant)


async def test_refusals_write_nothing_and_stay_refused(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 1_000), ("b", 500)))
    assert (await refund(loyalty_client, tenant, "o-1", "r-0", ("a", 600))).status_code == 201
    cases = [
        ("r-1", [("a", 401)], 422, "refund-exceeds-paid"),
        ("r-2", [("b", 100), ("a", 401)], 422, "refund-exceeds-paid"),
        ("r-3", [("zz", 1)], 422, "unknown-item"),
        ("r-4", [("b", 1), ("b", 1)], 422, "duplicate-item"),
    ]
    for refund_id, items, status, problem in cases:
        response = await refund(loyalty_client, tenant, "o-1", refund_id, *items)
        assert (response.status_code, response.json()["type"]) == (status, problem), refund_id
    view = (await loyalty_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert (view["refunded_amount"], view["reversed_points"], len(view["refunds"])) == (600, 6, 1)
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 9, "held": 0, "debt": 0}
    # The refused id stays refused even when it would now fit.
    again = await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 401))
    assert (again.status_code, again.json()["type"]) == (422, "refund-exceeds-paid")
    missing = await refund(loyalty_client, tenant, "o-9", "r-9", ("a", 1))
    assert (missing.status_code, missing.json()["type"]) == (404, "order-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_refund_replays_and_conflicts_on_another_body(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 1_000)))
    await place(loyalty_client, tenant, order_body("o-2", "m1", ("a", 1_000)))
    first = await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 500))
    again = await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 500))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    for order_id, amount in (("o-1", 400), ("o-2", 500)):
        other = await refund(loyalty_client, tenant, order_id, "r-1", ("a", amount))
        assert (other.status_code, other.json()["type"]) == (409, "idempotency-conflict")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 15, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)
