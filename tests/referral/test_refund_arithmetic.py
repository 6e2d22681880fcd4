"""Property: partial refunds of an item, in any amounts and order, reverse exactly the commission of
what was refunded: after each refund a level has given back floor(commission × refunded / paid) in
total, never more than it earned, and a full refund gives back everything (§6.4, floor rounding).

Hypothesis drives the HTTP API on an event loop of its own (plain `def`, like the ledger model test).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import SyncHarness as Harness


@pytest.fixture(scope="module")
def harness(database_url: str) -> Iterator[Harness]:
    with Harness("referral", database_url) as h:
        yield h


async def _scenario(h: Harness, amount: int, rates: tuple[int, int], refunds: list[int], released: bool) -> None:
    client, tenant = h.client, await h.tenant()
    ok = await client.put("/v1/program", json={"level_rates_bps": list(rates)}, headers=tenant.admin)
    assert ok.status_code == 200, ok.text
    code = None
    for member in ("A", "B", "C"):
        body: dict[str, Any] = {"registered_at": "2026-01-01T00:00:00Z"}
        if code:
            body["invite_code"] = code
        code = (await client.put(f"/v1/members/{member}", json=body, headers=tenant.client)).json()["invite_code"]
    order = {
        "order_id": "o",
        "buyer_id": "C",
        "currency": "CNY",
        "items": [{"item_id": "i", "amount": amount, "quantity": 1}],
        "paid_at": "2026-03-01T00:00:00Z",
    }
    placed = await client.post("/v1/orders", json=order, headers=tenant.client)
    assert placed.status_code == 201, placed.text
    earned = {row["level"]: row["amount"] for row in placed.json()["items"][0]["commissions"]}
    assert earned == {lvl: amount * rate // 10_000 for lvl, rate in enumerate(rates, 1) if amount * rate // 10_000}
    if released:
        job = await client.post(
            "/v1/jobs/release-commission", json={"as_of": "2026-04-01T00:00:00Z"}, headers=tenant.admin
        )
        assert job.status_code == 200, job.text

    refunded = 0
    for n, part in enumerate(refunds):
        part = min(part, amount - refunded)
        if part == 0:
            break
        answer = await client.post(
            "/v1/orders/o/refunds",
            json={"refund_id": f"r{n}", "items": [{"item_id": "i", "amount": part}]},
            headers=tenant.client,
        )
        assert answer.status_code == 201, answer.text
        refunded += part
        view = (await client.get("/v1/orders/o", headers=tenant.client)).json()
        reversed_now = {row["level"]: row["reversed_amount"] for row in view["items"][0]["commissions"]}
        assert reversed_now == {lvl: got * refunded // amount for lvl, got in earned.items()}
        for member, lvl in (("B", 1), ("A", 2)):
            balances = (await client.get(f"/v1/members/{member}", headers=tenant.client)).json()["balances"]
            left = earned.get(lvl, 0) - reversed_now.get(lvl, 0)
            assert balances["frozen" if not released else "available"] == left
            assert balances["debt"] == 0  # nothing was withdrawn, so nothing is owed
    if refunded == amount:
        assert all(reversed_now[lvl] == got for lvl, got in earned.items())
    verify = await client.get("/v1/ledger/verify", headers=tenant.admin)
    assert verify.json()["ok"], verify.json()["violations"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(1, 10**8),
    rates=st.tuples(st.integers(0, 5000), st.integers(0, 5000)),
    refunds=st.lists(st.integers(1, 10**8), min_size=1, max_size=6),
    released=st.booleans(),
)
def test_partial_refunds_reverse_exactly_the_refunded_share(
    harness: Harness, amount: int, rates: tuple[int, int], refunds: list[int], released: bool
) -> None:
    harness.run(_scenario(harness, amount, rates, refunds, released))
