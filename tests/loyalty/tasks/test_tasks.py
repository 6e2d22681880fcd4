"""Tasks (§5.5): definitions, completions in the tenant's calendar, slots under concurrency, limits per
period, cooldowns, streaks and their bonuses, multipliers, qualifying points and the progress view.

The tenant fixture's time zone is Asia/Shanghai (UTC+8, no DST)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, put_member
from tests.loyalty.tasks.conftest import available, complete, events, progress, put_task

STREAK = {"bonuses": [{"day": 3, "points": 10}, {"day": 7, "points": 50}]}


def _local(day: str, clock: str = "09:00") -> str:
    return f"{day}T{clock}:00+08:00"


async def _award(client: httpx.AsyncClient, tenant: TenantKeys, member: str, cid: str, task: str, at: str) -> dict:
    response = await complete(client, tenant, member, cid, task, at)
    assert response.status_code == 201, response.text
    return response.json()


async def _refused(
    client: httpx.AsyncClient, tenant: TenantKeys, member: str, cid: str, task: str, at: str, status: int, kind: str
) -> None:
    response = await complete(client, tenant, member, cid, task, at)
    assert (response.status_code, response.json()["type"]) == (status, kind), response.text


async def test_the_admin_defines_and_lists_tasks(loyalty_client, tenant) -> None:
    body = {"name": "Daily check-in", "kind": "checkin", "points": 5, "period": "day", "streak": STREAK}
    created = await loyalty_client.put("/v1/tasks/checkin", json=body, headers=tenant.admin)
    assert created.status_code == 201, created.text
    task = created.json()
    assert (task["limit_per_period"], task["cooldown_seconds"], task["active"], task["version"]) == (1, 0, True, 1)
    assert task["streak"] == {**STREAK, "reset": "gap"}
    assert task["multipliers"] == {"tiers": {}, "plans": {}}

    same = await loyalty_client.put("/v1/tasks/checkin", json=body, headers=tenant.admin)
    assert (same.status_code, same.json()["version"]) == (200, 1)
    changed = await loyalty_client.put("/v1/tasks/checkin", json={**body, "points": 8}, headers=tenant.admin)
    assert (changed.status_code, changed.json()["version"], changed.json()["points"]) == (200, 2, 8)
    await put_task(loyalty_client, tenant, "share", kind="share", period="week", limit_per_period=3)

    first = await loyalty_client.get("/v1/tasks?limit=1", headers=tenant.client)
    assert [t["code"] for t in first.json()["items"]] == ["checkin"]
    second = await loyalty_client.get(
        "/v1/tasks", params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=tenant.client
    )
    assert [t["code"] for t in second.json()["items"]] == ["share"] and second.json()["next_cursor"] is None
    bad_cursor = await loyalty_client.get("/v1/tasks", params={"cursor": "nope"}, headers=tenant.client)
    assert (bad_cursor.status_code, bad_cursor.json()["type"]) == (400, "invalid-cursor")

    client_put = await loyalty_client.put("/v1/tasks/checkin", json=body, headers=tenant.client)
    assert client_put.status_code == 403
    await assert_ledger_ok(loyalty_client, tenant)


async def test_rules_the_schema_cannot_state_are_422(loyalty_client, tenant) -> None:
    base = {"name": "t", "kind": "checkin", "points": 5, "period": "day"}
    cases = [
        ({"streak": {"bonuses": [{"day": 3, "points": 1}, {"day": 3, "points": 2}]}}, "invalid-task"),
        ({"streak": {"bonuses": [{"day": 8, "points": 1}], "reset": "weekly"}}, "invalid-task"),
        ({"streak": {"bonuses": [{"day": 32, "points": 1}], "reset": "monthly"}}, "invalid-task"),
        ({"period": "lifetime", "streak": STREAK}, "invalid-task"),
        ({"multipliers": {"tiers": {"no such!": 20000}}}, "invalid-task"),
        ({"multipliers": {"plans": {"vip": -1}}}, "invalid-task"),
        ({"multipliers": {"tiers": {"gold": 20000}}}, "unknown-tier"),
    ]
    for extra, problem in cases:
        response = await loyalty_client.put("/v1/tasks/t", json={**base, **extra}, headers=tenant.admin)
        assert (response.status_code, response.json()["type"]) == (422, problem), (extra, response.text)
    listed = await loyalty_client.get("/v1/tasks", headers=tenant.client)
    assert listed.json()["items"] == []
    await assert_ledger_ok(loyalty_client, tenant)


async def test_local_midnight_splits_days_that_share_a_utc_day(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "ann")
    await put_task(loyalty_client, tenant, "checkin")
    late = await _award(loyalty_client, tenant, "ann", "c1", "checkin", _local("2026-03-10", "23:59"))
    early = await _award(loyalty_client, tenant, "ann", "c2", "checkin", _local("2026-03-11", "00:01"))
    assert late["occurred_at"][:10] == early["occurred_at"][:10] == "2026-03-10"  # the same UTC day
    assert (late["period_key"], late["sequence"], late["total"]) == ("2026-03-10", 1, 5)
    assert (early["period_key"], early["sequence"], early["total"]) == ("2026-03-11", 1, 5)
    assert await available(loyalty_client, tenant, "ann") == 10

    await _refused(
        loyalty_client, tenant, "ann", "c3", "checkin", _local("2026-03-11", "12:00"), 409, "task-limit-reached"
    )
    assert await available(loyalty_client, tenant, "ann") == 10
    history = await loyalty_client.get("/v1/members/ann/transactions", headers=tenant.client)
    assert [line["kind"] for line in history.json()["items"]] == ["points.task", "points.task"]
    earned = await events(loyalty_pool, tenant, "points.earned")
    assert [(e["source"], e["points"], e["completion_id"]) for e in earned] == [("task", 5, "c1"), ("task", 5, "c2")]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_twenty_concurrent_checkins_award_once(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "bo")
    await put_task(loyalty_client, tenant, "checkin")
    at = _local("2026-04-02", "08:00")
    responses = await asyncio.gather(
        *(complete(loyalty_client, tenant, "bo", f"c{i}", "checkin", at) for i in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"task-limit-reached"}
    assert await available(loyalty_client, tenant, "bo") == 5
    await assert_ledger_ok(loyalty_client, tenant)


async def test_concurrent_completions_fill_every_slot_once(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "cy")
    await put_task(loyalty_client, tenant, "share", kind="share", points=2, limit_per_period=3)
    at = _local("2026-04-02", "08:00")
    responses = await asyncio.gather(*(complete(loyalty_client, tenant, "cy", f"s{i}", "share", at) for i in range(12)))
    awarded = [r.json() for r in responses if r.status_code == 201]
    assert sorted(a["sequence"] for a in awarded) == [1, 2, 3]
    assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 9
    assert await available(loyalty_client, tenant, "cy") == 6
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_streak_pays_its_bonuses_and_a_gap_starts_again(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "di")
    await put_task(loyalty_client, tenant, "checkin", streak=STREAK, limit_per_period=2)
    days = ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]
    awards = [await _award(loyalty_client, tenant, "di", f"d{i}", "checkin", _local(d)) for i, d in enumerate(days)]
    assert [(a["streak_day"], a["streak_bonus"], a["total"]) for a in awards] == [
        (1, 0, 5),
        (2, 0, 5),
        (3, 10, 15),
        (4, 0, 5),
    ]
    again = await _award(loyalty_client, tenant, "di", "d3b", "checkin", _local("2026-05-04", "20:00"))
    assert (again["sequence"], again["streak_day"], again["streak_bonus"]) == (2, 4, 0)  # the same day: no bonus
    late = await _award(loyalty_client, tenant, "di", "late", "checkin", _local("2026-04-20"))
    assert (late["streak_day"], late["streak_bonus"]) == (None, 0)  # before the streak: left alone

    after_gap = [
        await _award(loyalty_client, tenant, "di", f"g{i}", "checkin", _local(d))
        for i, d in enumerate(["2026-05-06", "2026-05-07", "2026-05-08"])
    ]
    assert [(a["streak_day"], a["streak_bonus"]) for a in after_gap] == [(1, 0), (2, 0), (3, 10)]
    assert await available(loyalty_client, tenant, "di") == 4 * 5 + 10 + 5 + 5 + 3 * 5 + 10
    await assert_ledger_ok(loyalty_client, tenant)


async def test_weekly_and_monthly_resets(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "ed")
    weekly = {"bonuses": [{"day": 2, "points": 1}], "reset": "weekly"}
    monthly = {"bonuses": [{"day": 2, "points": 1}], "reset": "monthly"}
    await put_task(loyalty_client, tenant, "weekly", streak=weekly)
    await put_task(loyalty_client, tenant, "monthly", streak=monthly)
    # Saturday 2026-05-30, Sunday 31 May, Monday 1 June: a new ISO week and a new month on Monday
    for i, day in enumerate(["2026-05-30", "2026-05-31", "2026-06-01"]):
        week = await _award(loyalty_client, tenant, "ed", f"w{i}", "weekly", _local(day))
        month = await _award(loyalty_client, tenant, "ed", f"m{i}", "monthly", _local(day))
        assert week["streak_day"] == [1, 2, 1][i], week
        assert month["streak_day"] == [1, 2, 1][i], month
    # Tuesday 2 June: the weekly streak runs on within the new week
    week = await _award(loyalty_client, tenant, "ed", "w3", "weekly", _local("2026-06-02"))
    assert (week["streak_day"], week["streak_bonus"]) == (2, 1)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_limits_per_week_month_and_lifetime(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "fa")
    await put_task(loyalty_client, tenant, "share", kind="share", period="week", limit_per_period=2)
    await put_task(loyalty_client, tenant, "post", kind="post", period="month", points=20)
    await put_task(loyalty_client, tenant, "profile", kind="profile", period="lifetime", points=100)

    # ISO week 2026-W23 runs Monday 1 June to Sunday 7 June
    first = await _award(loyalty_client, tenant, "fa", "s1", "share", _local("2026-06-01", "00:00"))
    second = await _award(loyalty_client, tenant, "fa", "s2", "share", _local("2026-06-03"))
    assert [(first["period_key"], first["sequence"]), (second["period_key"], second["sequence"])] == [
        ("2026-W23", 1),
        ("2026-W23", 2),
    ]
    await _refused(
        loyalty_client, tenant, "fa", "s3", "share", _local("2026-06-07", "23:59"), 409, "task-limit-reached"
    )
    next_week = await _award(loyalty_client, tenant, "fa", "s4", "share", _local("2026-06-08", "00:00"))
    assert next_week["period_key"] == "2026-W24"
    # an ISO week belongs to the ISO year: Friday 1 January 2021 is in 2020-W53
    year_end = await _award(loyalty_client, tenant, "fa", "s5", "share", _local("2021-01-01"))
    assert year_end["period_key"] == "2020-W53"

    june = await _award(loyalty_client, tenant, "fa", "p1", "post", _local("2026-06-01"))
    assert june["period_key"] == "2026-06"
    await _refused(loyalty_client, tenant, "fa", "p2", "post", _local("2026-06-30", "23:59"), 409, "task-limit-reached")
    july = await _award(loyalty_client, tenant, "fa", "p3", "post", _local("2026-07-01", "00:00"))
    assert july["period_key"] == "2026-07"

    once = await _award(loyalty_client, tenant, "fa", "f1", "profile", _local("2026-06-01"))
    assert (once["period_key"], once["total"]) == ("lifetime", 100)
    await _refused(loyalty_client, tenant, "fa", "f2", "profile", _local("2026-09-01"), 409, "task-limit-reached")
    assert await available(loyalty_client, tenant, "fa") == 5 * 4 + 20 * 2 + 100
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_cooldown_spaces_completions(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "gu")
    await put_task(loyalty_client, tenant, "post", kind="post", limit_per_period=10, cooldown_seconds=3600)
    await _award(loyalty_client, tenant, "gu", "p1", "post", _local("2026-06-01", "10:00"))
    await _refused(loyalty_client, tenant, "gu", "p2", "post", _local("2026-06-01", "10:59"), 409, "task-cooldown")
    await _refused(loyalty_client, tenant, "gu", "p3", "post", _local("2026-06-01", "09:30"), 409, "task-cooldown")
    third = await _award(loyalty_client, tenant, "gu", "p4", "post", _local("2026-06-01", "11:00"))
    assert third["sequence"] == 2  # the refused ones took no slot
    # across local midnight the cooldown still holds
    await _award(loyalty_client, tenant, "gu", "p5", "post", _local("2026-06-01", "23:30"))
    await _refused(loyalty_client, tenant, "gu", "p6", "post", _local("2026-06-02", "00:10"), 409, "task-cooldown")
    assert await available(loyalty_client, tenant, "gu") == 15
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_retry_returns_the_first_answer(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "hu")
    await put_member(loyalty_client, tenant, "io")
    await put_task(loyalty_client, tenant, "checkin")
    at = _local("2026-06-01")
    first = await complete(loyalty_client, tenant, "hu", "c1", "checkin", at)
    again = await complete(loyalty_client, tenant, "hu", "c1", "checkin", at)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert await available(loyalty_client, tenant, "hu") == 5

    other_body = await complete(loyalty_client, tenant, "hu", "c1", "checkin", _local("2026-06-02"))
    other_member = await complete(loyalty_client, tenant, "io", "c1", "checkin", at)
    assert {other_body.json()["type"], other_member.json()["type"]} == {"idempotency-conflict"}

    refused = await complete(loyalty_client, tenant, "hu", "c2", "checkin", at)
    assert refused.json()["type"] == "task-limit-reached"
    # the refusal is pinned: a new day does not turn the same completion id into an award
    await put_task(loyalty_client, tenant, "checkin", limit_per_period=2)
    pinned = await complete(loyalty_client, tenant, "hu", "c2", "checkin", at)
    assert (pinned.status_code, pinned.json()["type"]) == (409, "task-limit-reached")
    assert await available(loyalty_client, tenant, "hu") == 5
    await assert_ledger_ok(loyalty_client, tenant)


async def test_unknown_inactive_and_badly_timed_completions_are_refused(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "ju")
    await put_task(loyalty_client, tenant, "old", active=False)
    at = _local("2026-06-01")
    await _refused(loyalty_client, tenant, "ju", "x1", "nope", at, 404, "task-not-found")
    await _refused(loyalty_client, tenant, "ju", "x2", "old", at, 409, "task-inactive")
    await _refused(loyalty_client, tenant, "nobody", "x3", "old", at, 404, "member-not-found")
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    await put_task(loyalty_client, tenant, "checkin")
    await _refused(loyalty_client, tenant, "ju", "x4", "checkin", soon, 422, "invalid-timestamp")
    await _refused(loyalty_client, tenant, "ju", "x5", "checkin", "3001-01-01T00:00:00Z", 422, "invalid-timestamp")
    assert await available(loyalty_client, tenant, "ju") == 0
    await assert_ledger_ok(loyalty_client, tenant)


async def test_task_points_qualify_and_tier_multipliers_apply(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "ka")
    await put_task(loyalty_client, tenant, "profile", kind="profile", period="lifetime", points=1000)
    await put_task(loyalty_client, tenant, "checkin", multipliers={"tiers": {"premium": 15000}})
    recent = datetime.now(UTC) - timedelta(hours=2)

    before = await _award(loyalty_client, tenant, "ka", "c0", "checkin", (recent - timedelta(days=1)).isoformat())
    assert (before["multiplier_bps"], before["total"]) == (10000, 5)
    await _award(loyalty_client, tenant, "ka", "f1", "profile", recent.isoformat())
    member = (await loyalty_client.get("/v1/members/ka", headers=tenant.client)).json()
    assert member["tier"]["earned"]["code"] == "premium"
    assert member["qualifying"]["points"] == 1005
    changed = await events(loyalty_pool, tenant, "member.tier_changed")
    assert [(e["from_tier"], e["to_tier"]) for e in changed] == [("normal", "premium")]

    after = await _award(loyalty_client, tenant, "ka", "c1", "checkin", recent.isoformat())
    assert (after["multiplier_bps"], after["points"], after["total"]) == (15000, 7, 7)  # floor(5 × 1.5)
    assert await available(loyalty_client, tenant, "ka") == 5 + 1000 + 7
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_progress_view_shows_counts_cooldowns_and_the_streak(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "li")
    await put_task(loyalty_client, tenant, "checkin", streak=STREAK)
    await put_task(loyalty_client, tenant, "post", kind="post", limit_per_period=3, cooldown_seconds=3600)
    await put_task(loyalty_client, tenant, "hidden", active=False)
    now = datetime.now(UTC) - timedelta(seconds=5)

    fresh = await progress(loyalty_client, tenant, "li")
    assert set(fresh) == {"checkin", "post"}
    assert (fresh["checkin"]["completed"], fresh["checkin"]["remaining"], fresh["checkin"]["available"]) == (0, 1, True)
    assert fresh["checkin"]["streak"] == {
        "length": 0,
        "longest": 0,
        "last_day": None,
        "reset": "gap",
        "next_bonus": {"day": 3, "points": 10},
    }
    assert fresh["post"]["streak"] is None

    await _award(loyalty_client, tenant, "li", "c1", "checkin", (now - timedelta(days=1)).isoformat())
    await _award(loyalty_client, tenant, "li", "c2", "checkin", now.isoformat())
    posted = await _award(loyalty_client, tenant, "li", "p1", "post", now.isoformat())
    view = await progress(loyalty_client, tenant, "li")
    checkin, post = view["checkin"], view["post"]
    assert (checkin["completed"], checkin["remaining"], checkin["available"]) == (1, 0, False)
    assert checkin["period_key"] == posted["period_key"]
    tomorrow = datetime.fromisoformat(checkin["next_allowed_at"])
    assert tomorrow.astimezone(UTC).strftime("%H:%M") == "16:00"  # 00:00 in Shanghai
    assert checkin["streak"]["length"] == 2 and checkin["streak"]["next_bonus"] == {"day": 3, "points": 10}
    assert (post["completed"], post["remaining"], post["available"]) == (1, 2, False)
    assert datetime.fromisoformat(post["next_allowed_at"]) == now + timedelta(hours=1)

    missing = await loyalty_client.get("/v1/members/nobody/tasks", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "member-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_running_plan_and_its_tier_raise_the_multiplier(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "mo")
    plan = await loyalty_client.put(
        "/v1/plans/vip",
        json={"name": "VIP", "duration": "P1M", "price": 990, "tier_code": "elite"},
        headers=tenant.admin,
    )
    assert plan.status_code == 201, plan.text
    await put_task(loyalty_client, tenant, "by-tier", points=10, multipliers={"tiers": {"elite": 20000}})
    await put_task(loyalty_client, tenant, "by-plan", points=10, multipliers={"plans": {"vip": 30000, "gone": 90000}})
    start = datetime.now(UTC) - timedelta(hours=1)

    before = await _award(loyalty_client, tenant, "mo", "b0", "by-plan", (start - timedelta(days=1)).isoformat())
    assert (before["multiplier_bps"], before["total"]) == (10000, 10)
    body = {"subscription_id": "sub1", "plan_code": "vip", "paid_amount": 990, "paid_at": start.isoformat()}
    bought = await loyalty_client.post("/v1/members/mo/subscriptions", json=body, headers=tenant.client)
    assert bought.status_code == 201, bought.text

    at = (start + timedelta(minutes=30)).isoformat()
    by_tier = await _award(loyalty_client, tenant, "mo", "t1", "by-tier", at)
    by_plan = await _award(loyalty_client, tenant, "mo", "p1", "by-plan", at)
    assert [(a["multiplier_bps"], a["total"]) for a in (by_tier, by_plan)] == [(20000, 20), (30000, 30)]
    view = await progress(loyalty_client, tenant, "mo")
    assert [(view[c]["multiplier_bps"], view[c]["points"]) for c in ("by-tier", "by-plan")] == [
        (20000, 20),
        (30000, 30),
    ]
    assert await available(loyalty_client, tenant, "mo") == 10 + 20 + 30
    await assert_ledger_ok(loyalty_client, tenant)
