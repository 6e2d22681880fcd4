"""Paid plans (§5.3): plans, purchases that start or stack, trials, lifetime, cancellation with and
without refund, the plan-expiry job and the tier a plan grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.loyalty.periods import add_months
from services.loyalty.plans.service import plan_end
from tests.loyalty.conftest import assert_ledger_ok, put_member
from tests.loyalty.plans.helpers import buy, events, history, member, put_plan, run_job, spend, when

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_plans_are_admin_configured_and_listed(loyalty_client, tenant) -> None:
    created = await loyalty_client.put(
        "/v1/plans/gold-m",
        json={"name": "Gold", "duration": "P1M", "price": 1990, "tier_code": "premium", "bonus_points": 100},
        headers=tenant.admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["grants_distribution"] is False
    same = await loyalty_client.put(
        "/v1/plans/gold-m",
        json={"name": "Gold", "duration": "P1M", "price": 1990, "tier_code": "premium", "bonus_points": 100},
        headers=tenant.admin,
    )
    assert (same.status_code, same.json()["version"]) == (200, 1)
    stale = await loyalty_client.put(
        "/v1/plans/gold-m",
        json={"name": "Gold", "duration": "P1Y", "price": 1990},
        headers={**tenant.admin, "If-Match": '"nope"'},
    )
    assert (stale.status_code, stale.json()["type"]) == (412, "precondition-failed")
    await put_plan(loyalty_client, tenant, "old", active=False)
    unknown = await loyalty_client.put(
        "/v1/plans/x", json={"name": "X", "duration": "P1M", "price": 1, "tier_code": "nope"}, headers=tenant.admin
    )
    assert (unknown.status_code, unknown.json()["type"]) == (422, "unknown-tier")
    as_client = await loyalty_client.put(
        "/v1/plans/x", json={"name": "X", "duration": "P1M", "price": 1}, headers=tenant.client
    )
    assert as_client.status_code == 403

    page = await loyalty_client.get("/v1/plans?limit=1", headers=tenant.client)
    assert [p["code"] for p in page.json()["items"]] == ["gold-m"]
    rest = await loyalty_client.get(f"/v1/plans?cursor={page.json()['next_cursor']}", headers=tenant.client)
    assert [p["code"] for p in rest.json()["items"]] == ["old"]
    active = await loyalty_client.get("/v1/plans?active=true", headers=tenant.client)
    assert [p["code"] for p in active.json()["items"]] == ["gold-m"]
    bad = await loyalty_client.get("/v1/plans?cursor=zzz", headers=tenant.client)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")
    missing = await loyalty_client.get("/v1/plans/none", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "plan-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


@pytest.mark.parametrize(
    ("paid_at", "ends_at"),
    [
        ("2024-01-31T00:30:00+08:00", "2024-02-29T00:30:00+08:00"),  # leap year
        ("2025-01-31T00:30:00+08:00", "2025-02-28T00:30:00+08:00"),
        # Jan 31 in Shanghai is Jan 30 in UTC: month steps are taken in the tenant's zone
        ("2025-01-31T23:30:00+08:00", "2025-02-28T23:30:00+08:00"),
    ],
)
async def test_a_month_from_january_31_ends_at_the_end_of_february(
    loyalty_client, tenant, paid_at: str, ends_at: str
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "monthly", tier_code="premium")
    response = await buy(loyalty_client, tenant, "m1", "s1", "monthly", paid_at)
    assert response.status_code == 201, response.text
    view = response.json()
    assert when(view["starts_at"]) == when(paid_at)
    assert when(view["ends_at"]) == when(ends_at) == when(view["plan_ends_at"])
    await assert_ledger_ok(loyalty_client, tenant)


@pytest.mark.parametrize(
    ("starts", "ends"),
    [
        (datetime(2028, 1, 31, 10, tzinfo=SHANGHAI), datetime(2028, 2, 29, 10, tzinfo=SHANGHAI)),
        (datetime(2027, 1, 31, 10, tzinfo=SHANGHAI), datetime(2027, 2, 28, 10, tzinfo=SHANGHAI)),
        (datetime(2027, 11, 30, 10, tzinfo=SHANGHAI), datetime(2028, 2, 29, 10, tzinfo=SHANGHAI)),
    ],
)
def test_plan_durations_clamp_in_the_tenant_zone(starts: datetime, ends: datetime) -> None:
    """2027/2028 lie ahead of the clock, where a purchase cannot be dated: the rule itself."""
    duration = "P1M" if starts.month == 1 else "P3M"
    assert plan_end(starts.astimezone(UTC), duration, "Asia/Shanghai") == ends
    assert plan_end(starts, "lifetime", "Asia/Shanghai") is None


async def test_a_renewal_before_the_end_extends_from_the_end(loyalty_client, tenant) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "yearly", duration="P1Y", tier_code="premium")
    first = (await buy(loyalty_client, tenant, "m1", "s1", "yearly", now - timedelta(days=355))).json()
    current_end = when(first["ends_at"])
    assert timedelta(days=9) < current_end - now < timedelta(days=12)

    renewal = await buy(loyalty_client, tenant, "m1", "s2", "yearly", now)
    assert renewal.status_code == 201, renewal.text
    assert when(renewal.json()["starts_at"]) == current_end
    expected = add_months(current_end.astimezone(SHANGHAI), 12)
    assert when(renewal.json()["ends_at"]) == expected == when(renewal.json()["plan_ends_at"])
    assert (await member(loyalty_client, tenant, "m1"))["tier"]["until"] == first["ends_at"]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_renewal_after_a_lapse_starts_at_payment(loyalty_client, tenant) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await put_member(loyalty_client, tenant, "m1")
    await put_member(loyalty_client, tenant, "m2")
    await put_plan(loyalty_client, tenant, "yearly", duration="P1Y", tier_code="premium")
    for member_id in ("m1", "m2"):
        lapsed = await buy(loyalty_client, tenant, member_id, f"{member_id}-old", "yearly", now - timedelta(days=400))
        assert when(lapsed.json()["ends_at"]) < now
    await run_job(loyalty_client, tenant, "expire-plans", now)  # m2's lapsed plan: still `active` for m1

    for member_id in ("m1", "m2"):
        renewal = (await buy(loyalty_client, tenant, member_id, f"{member_id}-new", "yearly", now)).json()
        assert when(renewal["starts_at"]) == now
        assert when(renewal["ends_at"]) == add_months(now.astimezone(SHANGHAI), 12)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_plans_of_other_tiers_run_side_by_side(loyalty_client, tenant) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium")
    await put_plan(loyalty_client, tenant, "black", tier_code="elite")
    await buy(loyalty_client, tenant, "m1", "s1", "gold", now)
    elite = (await buy(loyalty_client, tenant, "m1", "s2", "black", now)).json()
    assert when(elite["starts_at"]) == now  # not stacked after the premium plan
    view = await member(loyalty_client, tenant, "m1")
    assert (view["tier"]["code"], view["tier"]["plan"]["subscription_id"]) == ("elite", "s2")
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in await history(loyalty_client, tenant, "m1")] == [
        ("premium", "elite", "plan_started"),
        ("normal", "premium", "plan_started"),
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_trial_once_per_member(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_member(loyalty_client, tenant, "m2")
    await put_plan(loyalty_client, tenant, "trial", tier_code="premium", trial=True, price=0, bonus_points=10)
    first = await buy(loyalty_client, tenant, "m1", "t1", "trial", now, paid_amount=0)
    assert first.status_code == 201 and first.json()["trial"] is True
    await loyalty_client.post("/v1/subscriptions/t1/cancel", json={}, headers=tenant.client)

    again = await buy(loyalty_client, tenant, "m1", "t2", "trial", now, paid_amount=0)
    assert (again.status_code, again.json()["type"]) == (409, "trial-used")
    retry = await buy(loyalty_client, tenant, "m1", "t2", "trial", now, paid_amount=0)
    assert (retry.status_code, retry.json()["type"], retry.headers["Idempotent-Replayed"]) == (
        409,
        "trial-used",
        "true",
    )
    listed = await loyalty_client.get("/v1/members/m1/subscriptions", headers=tenant.client)
    assert [s["subscription_id"] for s in listed.json()["items"]] == ["t1"]
    assert len(await events(loyalty_pool, tenant, "plan.activated")) == 1
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 10
    other = await buy(loyalty_client, tenant, "m2", "t3", "trial", now, paid_amount=0)
    assert other.status_code == 201
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_lifetime_plan_never_ends(loyalty_client, tenant) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "forever", duration="lifetime", tier_code="elite")
    bought = await buy(loyalty_client, tenant, "m1", "s1", "forever", now)
    assert (bought.json()["ends_at"], bought.json()["plan_ends_at"]) == (None, None)
    assert (await run_job(loyalty_client, tenant, "expire-plans", datetime(2999, 1, 1, tzinfo=UTC)))["processed"] == 0
    view = await member(loyalty_client, tenant, "m1")
    assert (view["tier"]["code"], view["tier"]["source"], view["tier"]["until"]) == ("elite", "plan", None)

    more = await buy(loyalty_client, tenant, "m1", "s2", "forever", now)
    assert (more.status_code, more.json()["type"]) == (409, "lifetime-active")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_purchases_are_idempotent_and_checked(loyalty_client, tenant) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium", bonus_points=50)
    await put_plan(loyalty_client, tenant, "retired", active=False)
    first = await buy(loyalty_client, tenant, "m1", "s1", "gold", now)
    replay = await buy(loyalty_client, tenant, "m1", "s1", "gold", now)
    assert (replay.status_code, replay.content, replay.headers["Idempotent-Replayed"]) == (201, first.content, "true")
    other_body = await buy(loyalty_client, tenant, "m1", "s1", "gold", now, paid_amount=1)
    assert (other_body.status_code, other_body.json()["type"]) == (409, "idempotency-conflict")
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 50

    for sid, member_id, plan, paid_at, status, problem in [
        ("s2", "ghost", "gold", now, 404, "member-not-found"),
        ("s3", "m1", "nope", now, 422, "unknown-plan"),
        ("s4", "m1", "retired", now, 422, "plan-inactive"),
        ("s5", "m1", "gold", now + timedelta(hours=1), 422, "invalid-timestamp"),
    ]:
        refused = await buy(loyalty_client, tenant, member_id, sid, plan, paid_at)
        assert (refused.status_code, refused.json()["type"]) == (status, problem), refused.text
    got = await loyalty_client.get("/v1/subscriptions/s1", headers=tenant.client)
    assert got.status_code == 200 and got.headers["ETag"]
    assert got.json()["status"] == "active" and "plan_ends_at" not in got.json()
    missing = await loyalty_client.get("/v1/subscriptions/none", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "subscription-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_cancel_without_refund_keeps_the_bonus(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium", bonus_points=500)
    await buy(loyalty_client, tenant, "m1", "s1", "gold", now - timedelta(days=1))

    cancelled = await loyalty_client.post("/v1/subscriptions/s1/cancel", json={"refund": False}, headers=tenant.client)
    assert cancelled.status_code == 200, cancelled.text
    view = cancelled.json()
    assert (view["status"], view["refunded"]) == ("cancelled", False)
    assert when(view["ends_at"]) == when(view["cancelled_at"]) >= now
    again = await loyalty_client.post("/v1/subscriptions/s1/cancel", json={"refund": False}, headers=tenant.client)
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.json()) == (200, "true", view)
    changed = await loyalty_client.post("/v1/subscriptions/s1/cancel", json={"refund": True}, headers=tenant.client)
    assert (changed.status_code, changed.json()["type"]) == (409, "already-cancelled")

    after = await member(loyalty_client, tenant, "m1")
    assert after["balances"]["available"] == 500
    assert (after["tier"]["code"], after["tier"]["source"]) == ("normal", "earned")
    assert (await history(loyalty_client, tenant, "m1"))[0]["reason"] == "plan_ended"
    assert [e["refund"] for e in await events(loyalty_pool, tenant, "plan.cancelled")] == [False]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_cancel_with_refund_reverses_the_bonus(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium", bonus_points=500)
    await buy(loyalty_client, tenant, "m1", "s1", "gold", datetime.now(UTC))
    cancelled = await loyalty_client.post("/v1/subscriptions/s1/cancel", json={"refund": True}, headers=tenant.client)
    assert (cancelled.json()["status"], cancelled.json()["refunded"]) == ("cancelled", True)
    view = await member(loyalty_client, tenant, "m1")
    assert (view["balances"]["available"], view["balances"]["debt"]) == (0, 0)
    assert view["tier"]["code"] == "normal"
    missing = await loyalty_client.post("/v1/subscriptions/none/cancel", json={}, headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "subscription-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_refund_after_the_bonus_was_spent_books_debt(loyalty_client, tenant, loyalty_pool) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", bonus_points=500)
    await buy(loyalty_client, tenant, "m1", "s1", "gold", datetime.now(UTC))
    await spend(loyalty_pool, tenant, "m1", 300)
    await loyalty_client.post("/v1/subscriptions/s1/cancel", json={"refund": True}, headers=tenant.client)
    balances = (await member(loyalty_client, tenant, "m1"))["balances"]
    assert (balances["available"], balances["debt"]) == (0, 300)
    assert [(e["points_reversed"], e["debt"]) for e in await events(loyalty_pool, tenant, "plan.cancelled")] == [
        (500, 300)
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_later_purchase_stacked_on_a_cancelled_one_keeps_its_dates(loyalty_client, tenant) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium")
    first = (await buy(loyalty_client, tenant, "m1", "s1", "gold", now)).json()
    second = (await buy(loyalty_client, tenant, "m1", "s2", "gold", now)).json()
    assert second["starts_at"] == first["ends_at"]
    await loyalty_client.post("/v1/subscriptions/s1/cancel", json={}, headers=tenant.client)
    kept = (await loyalty_client.get("/v1/subscriptions/s2", headers=tenant.client)).json()
    assert (kept["starts_at"], kept["ends_at"], kept["status"]) == (second["starts_at"], second["ends_at"], "active")
    # a stacked subscription not yet started keeps its dates when cancelled too
    future = await loyalty_client.post("/v1/subscriptions/s2/cancel", json={}, headers=tenant.client)
    assert (future.json()["starts_at"], future.json()["ends_at"]) == (second["starts_at"], second["ends_at"])
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_plan_tier_holds_until_the_expiry_job(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium", grants_distribution=True)
    bought = (await buy(loyalty_client, tenant, "m1", "s1", "gold", now)).json()
    view = await member(loyalty_client, tenant, "m1")
    assert (view["tier"]["code"], view["tier"]["source"], view["tier"]["until"]) == (
        "premium",
        "plan",
        bought["ends_at"],
    )
    [activated] = await events(loyalty_pool, tenant, "plan.activated")
    assert activated == {
        "member_id": "m1",
        "plan_code": "gold",
        "subscription_id": "s1",
        "starts_at": bought["starts_at"],
        "ends_at": bought["ends_at"],
        "tier_code": "premium",
        "grants_distribution": True,
    }
    [raised] = await events(loyalty_pool, tenant, "member.tier_changed")
    assert (raised["from_tier"], raised["to_tier"], raised["source"], raised["reason"]) == (
        "normal",
        "premium",
        "plan",
        "plan_started",
    )

    ends_at = when(bought["ends_at"])
    early = await run_job(loyalty_client, tenant, "expire-plans", ends_at - timedelta(seconds=1))
    assert early["processed"] == 0
    done = await run_job(loyalty_client, tenant, "expire-plans", ends_at)
    assert done["processed"] == 1
    assert (await run_job(loyalty_client, tenant, "expire-plans", ends_at))["processed"] == 0
    assert (await loyalty_client.get("/v1/subscriptions/s1", headers=tenant.client)).json()["status"] == "expired"
    view = await member(loyalty_client, tenant, "m1")
    assert (view["tier"]["code"], view["tier"]["source"], view["tier"]["plan"]) == ("normal", "earned", None)
    [expired] = await events(loyalty_pool, tenant, "plan.expired")
    assert expired == activated
    changes = await events(loyalty_pool, tenant, "member.tier_changed")
    assert [(c["to_tier"], c["direction"], c["reason"]) for c in changes] == [
        ("premium", "up", "plan_started"),
        ("normal", "down", "plan_ended"),
    ]
    assert [(h["source"], h["reason"], when(h["occurred_at"])) for h in await history(loyalty_client, tenant, "m1")][
        0
    ] == ("plan", "plan_ended", ends_at)
    expired_cancel = await loyalty_client.post("/v1/subscriptions/s1/cancel", json={}, headers=tenant.client)
    assert (expired_cancel.status_code, expired_cancel.json()["type"]) == (409, "subscription-expired")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_expiry_of_a_plan_below_the_earned_tier_changes_no_tier(loyalty_client, tenant, loyalty_pool) -> None:
    now = datetime.now(UTC)
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn:
        await conn.execute(
            "UPDATE members SET earned_tier = 'elite' WHERE tenant_id = $1 AND member_id = 'm1'", tenant.tenant_id
        )
    await put_plan(loyalty_client, tenant, "gold", tier_code="premium")
    bought = (await buy(loyalty_client, tenant, "m1", "s1", "gold", now)).json()
    assert (await member(loyalty_client, tenant, "m1"))["tier"]["source"] == "earned"
    await run_job(loyalty_client, tenant, "expire-plans", when(bought["ends_at"]))
    assert await history(loyalty_client, tenant, "m1") == []
    assert len(await events(loyalty_pool, tenant, "plan.expired")) == 1
    await assert_ledger_ok(loyalty_client, tenant)
