"""Properties of the earning and refund arithmetic (§5.4, floor rounding):

- an order's points are split over its items exactly (each item its share's floor or ceiling);
- partial refunds, in any amounts and order, never reverse more than an item earned, and refunding
  everything reverses exactly what the order earned.

The pure functions run many examples; the HTTP scenario runs fewer, on an event loop of its own (plain
`def`, like the referral refund property).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.loyalty.orders.earning import Line, allocate, compute_points
from services.loyalty.orders.service import reversal_due
from tests.harness import SyncHarness as Harness

amounts = st.integers(0, 10**9)


@given(shares=st.lists(st.fractions(min_value=0, max_value=10**6, max_denominator=10**4), min_size=1, max_size=20))
def test_allocation_gives_each_share_its_floor_or_ceiling_and_sums_to_the_total(shares: list[Fraction]) -> None:
    total = sum(shares, Fraction(0))
    whole = total.numerator // total.denominator
    points = allocate(whole, shares)
    assert sum(points) == whole
    for share, got in zip(shares, points, strict=True):
        assert share - 1 < got <= share + 1 and got in (share.numerator // share.denominator, -(-share // 1))


@given(
    items=st.lists(st.tuples(amounts, st.integers(1, 100)), min_size=1, max_size=10),
    earn=st.tuples(st.integers(0, 1000), st.integers(1, 100_000)),
    tier_bps=st.integers(0, 100_000),
)
def test_items_sum_to_the_order_total(items: list[tuple[int, int]], earn: tuple[int, int], tier_bps: int) -> None:
    lines = [Line(item_id=str(n), sku=None, category=None, amount=a, quantity=q) for n, (a, q) in enumerate(items)]
    earning = compute_points(
        lines, earn_points=earn[0], earn_per_amount=earn[1], tier_bps=tier_bps, rules=[], day_left={}
    )
    paid = sum(a for a, _ in items)
    assert earning.total == paid * earn[0] * tier_bps // (earn[1] * 10_000)
    assert sum(earning.item_points.values()) == earning.total


@given(
    points=st.integers(0, 10**12),
    amount=st.integers(1, 10**12),
    parts=st.lists(st.integers(1, 10**12), min_size=1, max_size=10),
)
def test_cumulative_reversal_never_exceeds_and_a_full_refund_reverses_all(
    points: int, amount: int, parts: list[int]
) -> None:
    refunded = reversed_ = 0
    for part in parts:
        part = min(part, amount - refunded)
        if part == 0:
            break
        reversed_ += reversal_due(points, amount, refunded, reversed_, part)
        refunded += part
        assert reversed_ == points * refunded // amount <= points
    if refunded < amount:
        reversed_ += reversal_due(points, amount, refunded, reversed_, amount - refunded)
    assert reversed_ == points


@pytest.fixture(scope="module")
def harness(database_url: str) -> Iterator[Harness]:
    with Harness("loyalty", database_url) as h:
        yield h


async def _scenario(h: Harness, items: list[int], refunds: list[tuple[int, int]], released: bool) -> None:
    client, tenant = h.client, await h.tenant()
    member = await client.put("/v1/members/m", json={"joined_at": "2026-01-01T00:00:00Z"}, headers=tenant.client)
    assert member.status_code == 201, member.text
    lines = [{"item_id": f"i{n}", "amount": amount, "quantity": 1} for n, amount in enumerate(items)]
    order = {"order_id": "o", "member_id": "m", "currency": "CNY", "items": lines, "paid_at": "2026-03-01T00:00:00Z"}
    placed = await client.post("/v1/orders", json=order, headers=tenant.client)
    assert placed.status_code == 201, placed.text
    earned = {i["item_id"]: i["points"] for i in placed.json()["items"]}
    total = placed.json()["points"]
    assert sum(earned.values()) == total == sum(items) // 100
    if released:
        job = await client.post(
            "/v1/jobs/release-pending-points", json={"as_of": "2026-04-01T00:00:00Z"}, headers=tenant.admin
        )
        assert job.status_code == 200, job.text

    left = dict(enumerate(items))
    for n, (index, part) in enumerate([*refunds, *((i, a) for i, a in enumerate(items))]):
        index %= len(items)
        part = min(part, left[index])
        if part == 0:
            continue
        answer = await client.post(
            "/v1/orders/o/refunds",
            json={"refund_id": f"r{n}", "items": [{"item_id": f"i{index}", "amount": part}]},
            headers=tenant.client,
        )
        assert answer.status_code == 201, answer.text
        left[index] -= part
        view = answer.json()["order"]
        assert view["reversed_points"] <= total
        for item in view["items"]:
            assert item["reversed_points"] == item["points"] * item["refunded_amount"] // item["amount"]
    # The trailing refunds took back whatever was left: everything is reversed, nothing remains.
    view = (await client.get("/v1/orders/o", headers=tenant.client)).json()
    assert view["reversed_points"] == total and all(i["reversed_points"] == i["points"] for i in view["items"])
    balances = (await client.get("/v1/members/m", headers=tenant.client)).json()["balances"]
    assert balances == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    verify = await client.get("/v1/ledger/verify", headers=tenant.admin)
    assert verify.json()["ok"], verify.json()["violations"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.integers(1, 10**7), min_size=1, max_size=4),
    refunds=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 10**7)), max_size=6),
    released=st.booleans(),
)
def test_partial_refunds_then_the_rest_reverse_exactly_the_points(
    harness: Harness, items: list[int], refunds: list[tuple[int, int]], released: bool
) -> None:
    harness.run(_scenario(harness, items, refunds, released))
