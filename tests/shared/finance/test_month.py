"""A scripted month of activity on both services, driven over HTTP as a shop would, then reconciled
(DESIGN §7): the export balances per asset and equals the trial balance; the liability roll-forward
ties out for every category with nothing in `other`; its closing equals the sum of what the members'
own views show; a report of a past window gives the same numbers after more activity."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys
from tests.shared.finance.readers import READERS, summary_totals, totals
from tests.shared.finance.test_liability import assert_ties_out

OCT = "2026-10-{day:02d}T10:00:00+08:00"


def oct_(day: int, plus_days: int = 0) -> str:
    at = datetime.fromisoformat(OCT.format(day=day)) + timedelta(days=plus_days)
    return at.isoformat()


def _bucket(days: int) -> str:
    return "0-7" if days <= 7 else "8-30" if days <= 30 else "31-90" if days <= 90 else ">90"


class Shop:
    """One service of the tenant, over HTTP."""

    def __init__(self, client: httpx.AsyncClient, tenant: TenantKeys) -> None:
        self.client = client
        self.tenant = tenant

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, admin: bool = False,
                   expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:  # fmt: skip
        headers = self.tenant.admin if admin else self.tenant.client
        response = await self.client.request(method, path, json=body, headers=headers)
        assert response.status_code in expect, (path, response.text)
        return response.json() if response.content else {}

    async def job(self, name: str, as_of: str | datetime) -> None:
        at = as_of.isoformat() if isinstance(as_of, datetime) else as_of
        await self.call("POST", f"/v1/jobs/{name}", {"as_of": at}, admin=True, expect=(200,))

    async def get(self, path: str, **params: Any) -> httpx.Response:
        query = {k.rstrip("_"): v.isoformat() if isinstance(v, datetime) else v for k, v in params.items() if v}
        response = await self.client.get(path, params=query, headers=self.tenant.admin)
        assert response.status_code == 200, response.text
        return response

    async def liability(self, **params: Any) -> dict[str, Any]:
        return (await self.get("/v1/reports/liability", **params)).json()

    async def verify(self) -> None:
        report = (await self.get("/v1/ledger/verify")).json()
        assert report["ok"], report["violations"]


async def _db_now(pool: asyncpg.Pool) -> datetime:
    async with pool.acquire() as conn:
        value: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return value


# ----------------------------------------------------------------- loyalty


async def _loyalty_first_half(shop: Shop) -> None:
    await shop.call("PUT", "/v1/program", {"expiry": {"kind": "rolling_days", "n": 20}}, admin=True)
    for member in ("m1", "m2", "m3"):
        await shop.call("PUT", f"/v1/members/{member}", {"joined_at": oct_(1)})
    for order_id, member, day, amount in (("o-1", "m1", 1, 10_000), ("o-2", "m2", 3, 50_000), ("o-3", "m3", 5, 20_000)):
        items = [{"item_id": "a", "amount": amount, "quantity": 1}]
        body = {"order_id": order_id, "member_id": member, "currency": "CNY", "items": items, "paid_at": oct_(day)}
        await shop.call("POST", "/v1/orders", body)
    task = {"name": "check-in", "kind": "checkin", "points": 5, "period": "day"}
    await shop.call("PUT", "/v1/tasks/checkin", task, admin=True)
    for day in (2, 3):
        body = {"completion_id": f"c-{day}", "task_code": "checkin", "occurred_at": oct_(day)}
        await shop.call("POST", "/v1/members/m1/task-completions", body)
    await shop.job("release-pending-points", oct_(15))  # 100, 500, 200 become available
    # a partial refund after release: 50 points back from m1's available points
    refund = {"refund_id": "rf-1", "items": [{"item_id": "a", "amount": 5_000}]}
    await shop.call("POST", "/v1/orders/o-1/refunds", refund)


async def _loyalty_second_half(shop: Shop, pool: asyncpg.Pool) -> None:
    reward = {"name": "Mug", "cost_points": 30, "kind": "gift"}
    await shop.call("PUT", "/v1/rewards/mug", reward, admin=True)
    for redemption_id, member, quantity in (("r-1", "m2", 1), ("r-2", "m2", 2), ("r-3", "m3", 5)):
        body = {"redemption_id": redemption_id, "reward_code": "mug", "quantity": quantity}
        await shop.call("POST", f"/v1/members/{member}/redemptions", body)
    await shop.call("POST", "/v1/redemptions/r-2/cancel", {})
    # holds: one captured in part, one voided, one left to expire
    for hold_id, points, seconds in (("h-1", 40, 3600), ("h-2", 20, 3600), ("h-3", 10, 1)):
        body = {"hold_id": hold_id, "points": points, "order_ref": f"order-{hold_id}", "expires_in_seconds": seconds}
        await shop.call("POST", "/v1/members/m2/holds", body)
    await shop.call("POST", "/v1/holds/h-1/capture", {"points": 25})
    await shop.call("POST", "/v1/holds/h-2/void", {})
    await shop.job("expire-holds", await _db_now(pool) + timedelta(hours=1))
    # m3 spent 150 of 200, then the whole order is refunded: 50 from available, 150 as debt
    refund = {"refund_id": "rf-3", "items": [{"item_id": "a", "amount": 20_000}]}
    await shop.call("POST", "/v1/orders/o-3/refunds", refund)
    # a new order repays the debt first on release
    items = [{"item_id": "a", "amount": 30_000, "quantity": 1}]
    body = {"order_id": "o-4", "member_id": "m3", "currency": "CNY", "items": items, "paid_at": oct_(20)}
    await shop.call("POST", "/v1/orders", body)
    await shop.job("release-pending-points", oct_(28))
    # an operator's credit and debit
    await shop.call("POST", "/v1/members/m2/adjustments",
                    {"adjustment_id": "adj-1", "points": 15, "reason": "goodwill"}, admin=True)  # fmt: skip
    await shop.call("POST", "/v1/members/m2/adjustments",
                    {"adjustment_id": "adj-2", "points": -7, "reason": "correction"}, admin=True)  # fmt: skip
    # a plan with bonus points, bought then cancelled with refund; another kept
    plan = {"name": "Gold", "duration": "P1M", "price": 990, "bonus_points": 100}
    await shop.call("PUT", "/v1/plans/gold", plan, admin=True)
    for subscription_id, member in (("s-1", "m1"), ("s-2", "m2")):
        body = {"subscription_id": subscription_id, "plan_code": "gold", "paid_amount": 990, "paid_at": oct_(30)}
        await shop.call("POST", f"/v1/members/{member}/subscriptions", body)
    await shop.call("POST", "/v1/subscriptions/s-1/cancel", {"refund": True})
    # lots earned early in October expire 20 days on
    await shop.job("expire-points", oct_(31))


async def _loyalty_owed(shop: Shop) -> tuple[int, dict[str, int]]:
    """Σ over members of available + pending + held − debt, as GET /v1/members/{id} shows them."""
    by_role = {"available": 0, "pending": 0, "held": 0, "debt": 0}
    for member in ("m1", "m2", "m3"):
        balances = (await shop.call("GET", f"/v1/members/{member}"))["balances"]
        for role in by_role:
            by_role[role] += balances[role]
    return by_role["available"] + by_role["pending"] + by_role["held"] - by_role["debt"], by_role


# ----------------------------------------------------------------- referral


async def _referral_month(shop: Shop, pool: asyncpg.Pool) -> None:
    program = {"depth": 2, "level_rates_bps": [1000, 500], "freeze_days": 7, "min_withdrawal": 100,
               "withdrawal_fee_bps": 100, "auto_approve_limit": 0}  # fmt: skip
    await shop.call("PUT", "/v1/program", program, admin=True)
    code = None
    for member in ("A", "B", "C"):  # C invited by B, B by A: C's orders pay B (level 1) and A (level 2)
        body: dict[str, Any] = {"registered_at": oct_(1)} | ({"invite_code": code} if code else {})
        code = (await shop.call("PUT", f"/v1/members/{member}", body))["invite_code"]

    async def order(order_id: str, buyer: str, day: int, amount: int) -> None:
        items = [{"item_id": "i1", "category": "general", "amount": amount, "quantity": 1}]
        body = {"order_id": order_id, "buyer_id": buyer, "currency": "CNY", "items": items, "paid_at": oct_(day)}
        await shop.call("POST", "/v1/orders", body)

    async def refund(order_id: str, refund_id: str, amount: int) -> None:
        body = {"refund_id": refund_id, "items": [{"item_id": "i1", "amount": amount}]}
        await shop.call("POST", f"/v1/orders/{order_id}/refunds", body)

    async def withdraw(member: str, withdrawal_id: str, amount: int, *actions: str) -> None:
        body = {"withdrawal_id": withdrawal_id, "amount": amount, "channel": "alipay", "account_ref": "x@example.com"}
        await shop.call("POST", f"/v1/members/{member}/withdrawals", body)
        for action in actions:
            extra = {
                "reject": {"reason": "no"},
                "fail": {"reason": "bounced"},
                "complete": {"payout_ref": withdrawal_id},
            }
            await shop.call("POST", f"/v1/withdrawals/{withdrawal_id}/{action}", extra.get(action, {}), admin=True)

    await order("r-1", "C", 2, 100_000)  # B 10,000; A 5,000
    await order("r-2", "C", 10, 20_000)  # B 2,000; A 1,000
    await order("r-3", "B", 5, 50_000)  # A 5,000
    await refund("r-2", "rr-2", 10_000)  # before release: from frozen
    await shop.job("release-commission", oct_(20))
    await refund("r-1", "rr-1", 50_000)  # after release: from available
    await withdraw("B", "w-1", 3_000, "approve", "complete")
    await withdraw("B", "w-2", 1_000, "reject")
    await withdraw("A", "w-3", 2_000, "approve", "fail")
    await withdraw("A", "w-4", 6_000, "approve", "complete")
    await withdraw("A", "w-5", 500)  # still requested: withdrawing
    await refund("r-3", "rr-3", 50_000)  # A's 5,000 back: 1,500 from available, 3,500 as debt
    await order("r-4", "C", 25, 10_000)  # B 1,000; A 500, which repays debt on release
    await shop.job("release-commission", "2026-11-05T10:00:00+08:00")


async def _referral_owed(shop: Shop) -> tuple[int, dict[str, int]]:
    by_role = {"frozen": 0, "available": 0, "withdrawing": 0, "debt": 0}
    for member in ("A", "B", "C"):
        balances = (await shop.call("GET", f"/v1/members/{member}"))["balances"]
        for role in by_role:
            by_role[role] += balances[role]
    return by_role["frozen"] + by_role["available"] + by_role["withdrawing"] - by_role["debt"], by_role


# ----------------------------------------------------------------- reconciliation


async def _export_equals_trial_balance(shop: Shop) -> None:
    rows, summary = READERS["jsonl"]((await shop.get("/v1/ledger/entries", format="jsonl")).content)
    trial = (await shop.get("/v1/ledger/trial-balance")).json()
    exported = totals(rows)
    assert exported == summary_totals(summary)
    assert all(debits == credits for debits, credits in exported.values()), exported
    assert {t["asset"]: (t["debits"], t["credits"]) for t in trial["totals"]} == exported
    assert all(t["balanced"] for t in trial["totals"])


def _closing(report: dict[str, Any]) -> dict[str, int]:
    return {c["category"]: c["closing"] for c in report["categories"]}


def _amounts(report: dict[str, Any]) -> dict[str, int]:
    return {line["line"]: line["amount"] for line in report["lines"]}


async def test_a_month_of_loyalty_activity_reconciles(
    loyalty_client: httpx.AsyncClient, loyalty_pool: asyncpg.Pool, tenant: TenantKeys
) -> None:
    shop = Shop(loyalty_client, tenant)
    start = await _db_now(loyalty_pool)
    await _loyalty_first_half(shop)
    mid = await _db_now(loyalty_pool)
    first_half = await shop.liability(from_=start, to=mid)
    await _loyalty_second_half(shop, loyalty_pool)
    await shop.verify()

    report = await shop.liability()
    assert_ties_out(report)
    assert report["other"] == 0 and report["opening"] == 0 and report["asset"] == "PTS"
    owed, by_role = await _loyalty_owed(shop)
    assert report["closing"] == owed
    assert _closing(report) == {
        "points": by_role["available"],
        "points_pending": by_role["pending"],
        "points_held": by_role["held"],
        "points_debt": by_role["debt"],
    }
    amounts = _amounts(report)
    # 100 + 500 + 200 + 300 from orders, 2 × 5 check-ins, 100 + 100 plan bonuses
    assert amounts["issued"] == 1_310
    # 30 + 150 for mugs (60 cancelled nets out), 25 captured at checkout
    assert amounts["redeemed"] == 205
    assert amounts["reversed"] == 50 + 200 + 100 and amounts["adjusted"] == 15 - 7
    assert amounts["held"] == 70 and amounts["hold_returned"] == 20 + 10  # capture's rest is on `redeemed`
    assert amounts["expired"] > 0
    assert report["breakage_rate"] == round(amounts["expired"] / amounts["issued"], 6)
    assert by_role["debt"] == 0 and amounts["released"] == 1_100  # o-4's release repaid m3's 150 of debt
    await _export_equals_trial_balance(shop)

    # the first half, reported again after everything since: the same numbers
    again = await shop.liability(from_=start, to=mid)
    assert {k: v for k, v in again.items() if k != "generated_at"} == {
        k: v for k, v in first_half.items() if k != "generated_at"
    }
    assert_ties_out(first_half)
    # windows tile: [start, mid) then [mid, open) chain opening to closing
    second_half = await shop.liability(from_=mid)
    assert second_half["opening"] == first_half["closing"] and second_half["closing"] == report["closing"]
    assert_ties_out(second_half)
    # the business clock: October's activity by effective time, the rest after it
    october = await shop.liability(from_=oct_(1), to="2026-11-01T00:00:00+08:00", basis="effective")
    assert_ties_out(october)
    assert october["other"] == 0 and (await shop.liability(basis="effective"))["closing"] == report["closing"]


async def test_a_month_of_referral_activity_reconciles(
    referral_client: httpx.AsyncClient, loyalty_pool: asyncpg.Pool, tenant: TenantKeys
) -> None:
    shop = Shop(referral_client, tenant)
    await _referral_month(shop, loyalty_pool)
    await shop.verify()

    report = await shop.liability()
    assert_ties_out(report)
    assert report["other"] == 0 and report["asset"] == "CNY" and report["liability"] == "commission"
    owed, by_role = await _referral_owed(shop)
    assert report["closing"] == owed
    assert _closing(report) == {
        "commission_frozen": by_role["frozen"],
        "commission_available": by_role["available"],
        "commission_withdrawing": by_role["withdrawing"],
        "commission_debt": by_role["debt"],
    }
    amounts = _amounts(report)
    assert amounts["accrued"] == 15_000 + 3_000 + 5_000 + 1_500
    assert amounts["reversed"] == 1_500 + 7_500 + 5_000
    assert amounts["paid"] == 3_000 + 6_000
    assert report["memos"] == {"paid_out": 9_000 - 90, "fees": 90}
    assert amounts["withdrawal_requested"] == 3_000 + 1_000 + 2_000 + 6_000 + 500
    assert amounts["withdrawal_returned"] == 1_000 + 2_000
    assert by_role["debt"] == 3_000 and by_role["withdrawing"] == 500 and by_role["frozen"] == 0
    # B's 4,000 available, FIFO: the newest inflows are what is left (A's went to withdrawals and debt)
    now = datetime.fromisoformat(report["ages_as_of"])
    newest_first = [(1_000, now), (1_000, oct_(25, 7)), (1_000, oct_(10, 7)), (1_000, oct_(2, 7))]
    expected = dict.fromkeys(["0-7", "8-30", "31-90", ">90"], 0)
    for amount, released in newest_first:
        expected[_bucket((now - datetime.fromisoformat(str(released))).days)] += amount
    assert {b["bucket"]: b["amount"] for b in report["ageing"]} == expected
    assert by_role["available"] == 4_000  # the four inflows above, aged by the report as `expected` says
    await _export_equals_trial_balance(shop)

    # ageing as of a past time: every available amount then is at most its age at that time
    past = await shop.liability(to=await _db_now(loyalty_pool))
    assert sum(b["amount"] for b in past["ageing"]) == _closing(past)["commission_available"]
