"""The invite tree's closure table, team listings and leaderboards (§6.2, §6.6)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register

REGISTERED = "2026-03-01T10:00:00+08:00"


async def bind(
    client: httpx.AsyncClient, tenant: TenantKeys, invitee: str, inviter: str, occurred_at: str = REGISTERED
) -> None:
    body = {"invitee_id": invitee, "inviter_id": inviter, "occurred_at": occurred_at}
    response = await client.post("/v1/bindings", json=body, headers=tenant.client)
    assert response.status_code == 201, response.text


async def member(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


async def tree(client: httpx.AsyncClient, tenant: TenantKeys, ids: list[str]) -> dict[str, tuple[list[str], list[int]]]:
    """Each member's ancestors (level 1 first) and team counts per level."""
    views = [await member(client, tenant, m) for m in ids]
    return {
        v["member_id"]: (
            [a["member_id"] for a in v["ancestors"]],
            [v["team"]["level_1"], v["team"]["level_2"], v["team"]["level_3"]],
        )
        for v in views
    }


async def test_rebinding_a_member_with_a_team_moves_the_team(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await configure(referral_client, tenant, binding={"mode": "override"})
    ids = ["r1", "a", "b", "c", "d", "r2", "r3", "r4"]
    for m in ids:
        await register(referral_client, tenant, m, registered_at=REGISTERED)
    # r1 ← a ← b ← c ← d, and r2 ← r3
    for invitee, inviter in [("a", "r1"), ("b", "a"), ("c", "b"), ("d", "c"), ("r3", "r2")]:
        await bind(referral_client, tenant, invitee, inviter)
    assert await tree(referral_client, tenant, ids) == {
        "r1": ([], [1, 1, 1]),
        "a": (["r1"], [1, 1, 1]),
        "b": (["a", "r1"], [1, 1, 0]),
        "c": (["b", "a", "r1"], [1, 0, 0]),
        "d": (["c", "b", "a"], [0, 0, 0]),
        "r2": ([], [1, 0, 0]),
        "r3": (["r2"], [0, 0, 0]),
        "r4": ([], [0, 0, 0]),
    }

    # a (with three levels below it) moves under r3: everything above a changes for b and c, not for d.
    await bind(referral_client, tenant, "a", "r3", "2026-03-02T10:00:00+08:00")
    assert await tree(referral_client, tenant, ids) == {
        "r1": ([], [0, 0, 0]),
        "a": (["r3", "r2"], [1, 1, 1]),
        "b": (["a", "r3", "r2"], [1, 1, 0]),
        "c": (["b", "a", "r3"], [1, 0, 0]),
        "d": (["c", "b", "a"], [0, 0, 0]),
        "r2": ([], [1, 1, 1]),
        "r3": (["r2"], [1, 1, 1]),
        "r4": ([], [0, 0, 0]),
    }

    # b moves under a root: a shorter chain, so c's and d's deeper rows go away.
    await bind(referral_client, tenant, "b", "r4", "2026-03-03T10:00:00+08:00")
    assert await tree(referral_client, tenant, ids) == {
        "r1": ([], [0, 0, 0]),
        "a": (["r3", "r2"], [0, 0, 0]),
        "b": (["r4"], [1, 1, 0]),
        "c": (["b", "r4"], [1, 0, 0]),
        "d": (["c", "b", "r4"], [0, 0, 0]),
        "r2": ([], [1, 1, 0]),
        "r3": (["r2"], [1, 0, 0]),
        "r4": ([], [1, 1, 1]),
    }

    # A root with a team joins someone: its whole team gains ancestors.
    await bind(referral_client, tenant, "r4", "a", "2026-03-04T10:00:00+08:00")
    assert await tree(referral_client, tenant, ids) == {
        "r1": ([], [0, 0, 0]),
        "a": (["r3", "r2"], [1, 1, 1]),
        "b": (["r4", "a", "r3"], [1, 1, 0]),
        "c": (["b", "r4", "a"], [1, 0, 0]),
        "d": (["c", "b", "r4"], [0, 0, 0]),
        "r2": ([], [1, 1, 1]),
        "r3": (["r2"], [1, 1, 1]),
        "r4": (["a", "r3", "r2"], [1, 1, 1]),
    }
    await assert_ledger_ok(referral_client, tenant)


async def page_through(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, level: int, limit: int
) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"level": level, "limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/members/{member_id}/team", params=params, headers=tenant.client)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_team_pages_through_every_invitee_once(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    boss = await register(referral_client, tenant, "boss")
    invitees = [f"inv-{i:03d}" for i in range(250)]
    for batch in range(0, len(invitees), 25):
        await asyncio.gather(
            *(
                register(referral_client, tenant, m, registered_at=REGISTERED, invite_code=boss["invite_code"])
                for m in invitees[batch : batch + 25]
            )
        )
    # One level-2 member below the first invitee.
    first = await member(referral_client, tenant, invitees[0])
    await register(
        referral_client,
        tenant,
        "grandchild",
        registered_at="2026-03-05T10:00:00+08:00",
        invite_code=first["invite_code"],
    )

    pages = await page_through(referral_client, tenant, "boss", level=1, limit=100)
    assert [len(p) for p in pages] == [100, 100, 50]
    listed = [item["member_id"] for page in pages for item in page]
    assert listed == sorted(invitees)  # none missing, none twice, in member-id order
    # A last page that is exactly full has no cursor: no empty page after it.
    assert [len(p) for p in await page_through(referral_client, tenant, "boss", level=1, limit=125)] == [125, 125]
    assert pages[0][0] == {
        "member_id": "inv-000",
        "level": 1,
        "joined_at": "2026-03-01T02:00:00Z",
        "order_count": 0,
        "paid_amount": 0,
    }
    level_2 = await page_through(referral_client, tenant, "boss", level=2, limit=100)
    assert [[i["member_id"] for i in p] for p in level_2] == [["grandchild"]]
    assert level_2[0][0]["joined_at"] == "2026-03-05T02:00:00Z"
    assert await page_through(referral_client, tenant, "boss", level=3, limit=100) == [[]]
    assert (await member(referral_client, tenant, "boss"))["team"] == {"level_1": 250, "level_2": 1, "level_3": 0}

    bad = await referral_client.get("/v1/members/boss/team", params={"cursor": "not-ours"}, headers=tenant.client)
    assert bad.status_code == 400 and bad.json()["type"] == "invalid-cursor"
    unknown = await referral_client.get("/v1/members/nobody/team", headers=tenant.client)
    assert unknown.status_code == 404 and unknown.json()["type"] == "member-not-found"
    too_deep = await referral_client.get("/v1/members/boss/team", params={"level": 4}, headers=tenant.client)
    assert too_deep.status_code == 400
    await assert_ledger_ok(referral_client, tenant)


async def test_team_shows_order_statistics(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    ann = await register(referral_client, tenant, "ann")
    await register(referral_client, tenant, "bob", invite_code=ann["invite_code"])
    await order(referral_client, tenant, "o1", "bob", 3000)
    await order(referral_client, tenant, "o2", "bob", 2000)
    page = await referral_client.get("/v1/members/ann/team", headers=tenant.client)
    assert [(i["member_id"], i["order_count"], i["paid_amount"]) for i in page.json()["items"]] == [("bob", 2, 5000)]
    bob = await member(referral_client, tenant, "bob")
    assert (bob["order_count"], bob["paid_amount"]) == (2, 5000)
    await assert_ledger_ok(referral_client, tenant)


async def order(
    client: httpx.AsyncClient, tenant: TenantKeys, order_id: str, buyer: str, amount: int, paid_at: str = REGISTERED
) -> None:
    body = {
        "order_id": order_id,
        "buyer_id": buyer,
        "currency": "CNY",
        "items": [{"item_id": "i1", "amount": amount}],
        "paid_at": paid_at,
    }
    response = await client.post("/v1/orders", json=body, headers=tenant.admin)
    assert response.status_code == 201, response.text


async def ranking(client: httpx.AsyncClient, tenant: TenantKeys, metric: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/leaderboards/{metric}", params=params, headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


def scores(board: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["member_id"], e["score"]) for e in board["items"]]


async def test_invites_leaderboard_ranks_by_score_then_member(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # bea and cal tie at 2 (bea first by id), ann leads with 3, dee has 1; one of cal's is another day.
    for m in ["ann", "bea", "cal", "dee"]:
        await register(referral_client, tenant, m, registered_at=REGISTERED)
    plan = {"ann": 3, "bea": 2, "cal": 2, "dee": 1}
    n = 0
    for inviter, count in plan.items():
        for _ in range(count):
            n += 1
            at = "2026-03-09T23:30:00+08:00" if (inviter, _) == ("cal", 1) else "2026-03-10T09:00:00+08:00"
            await register(referral_client, tenant, f"x{n}", registered_at=REGISTERED)
            await bind(referral_client, tenant, f"x{n}", inviter, at)

    everything = await ranking(referral_client, tenant, "invites", period="all")
    assert scores(everything) == [(1, "ann", 3), (2, "bea", 2), (3, "cal", 2), (4, "dee", 1)]
    assert everything["period_start"] is None and everything["next_cursor"] is None

    # Pages of two: the cursor carries (score, member, rank).
    first = await ranking(referral_client, tenant, "invites", period="all", limit=2)
    second = await ranking(referral_client, tenant, "invites", period="all", limit=2, cursor=first["next_cursor"])
    assert scores(first) + scores(second) == scores(everything)
    assert second["next_cursor"] is None

    # The tenant-local day of 2026-03-10 (Asia/Shanghai) leaves cal's binding of the 9th out.
    day = await ranking(referral_client, tenant, "invites", period="day", as_of="2026-03-10T12:00:00+08:00")
    assert scores(day) == [(1, "ann", 3), (2, "bea", 2), (3, "cal", 1), (4, "dee", 1)]
    assert (day["period_start"], day["period_end"]) == ("2026-03-10T00:00:00+08:00", "2026-03-11T00:00:00+08:00")
    week = await ranking(referral_client, tenant, "invites", period="week", as_of="2026-03-10T12:00:00+08:00")
    assert week["period_start"] == "2026-03-09T00:00:00+08:00" and scores(week) == scores(everything)
    month = await ranking(referral_client, tenant, "invites", period="month", as_of="2026-03-31T23:00:00+08:00")
    assert month["period_end"] == "2026-04-01T00:00:00+08:00" and scores(month) == scores(everything)
    empty = await ranking(referral_client, tenant, "invites", period="month", as_of="2026-04-01T00:00:00+08:00")
    assert empty["items"] == []

    unknown = await referral_client.get("/v1/leaderboards/likes", headers=tenant.client)
    assert unknown.status_code in (400, 404)
    bad = await referral_client.get("/v1/leaderboards/invites", params={"cursor": "xyz"}, headers=tenant.client)
    assert bad.status_code == 400 and bad.json()["type"] == "invalid-cursor"
    await assert_ledger_ok(referral_client, tenant)


MARCH = "2026-03-15T00:00:00+08:00"


async def test_commission_and_team_sales_leaderboards(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    # Default programme: L1 10 %, L2 5 %. top ← mid ← {b1, b2}; other ← b3.
    await configure(referral_client, tenant)
    top = await register(referral_client, tenant, "top")
    mid = await register(referral_client, tenant, "mid", invite_code=top["invite_code"])
    other = await register(referral_client, tenant, "other")
    await register(referral_client, tenant, "b1", invite_code=mid["invite_code"])
    await register(referral_client, tenant, "b2", invite_code=mid["invite_code"])
    await register(referral_client, tenant, "b3", invite_code=other["invite_code"])
    await order(referral_client, tenant, "o1", "b1", 10_000, "2026-03-10T10:00:00+08:00")
    await order(referral_client, tenant, "o2", "b2", 6_000, "2026-03-10T11:00:00+08:00")
    await order(referral_client, tenant, "o3", "b3", 12_000, "2026-03-10T12:00:00+08:00")
    await order(referral_client, tenant, "o4", "b3", 99_000, "2026-02-27T12:00:00+08:00")

    commission = await ranking(referral_client, tenant, "commission", period="all")
    # mid: 10 % of 16000; other: 10 % of 111000; top: 5 % of 16000.
    assert scores(commission) == [(1, "other", 11_100), (2, "mid", 1_600), (3, "top", 800)]
    today = await ranking(referral_client, tenant, "commission", period="day")
    assert scores(today) == scores(commission)  # commission items are created now
    assert (await ranking(referral_client, tenant, "commission", period="day", as_of="2026-01-01T00:00:00Z"))[
        "items"
    ] == []

    march = await ranking(referral_client, tenant, "team_sales", period="month", as_of="2026-03-15T00:00:00+08:00")
    assert scores(march) == [(1, "mid", 16_000), (2, "top", 16_000), (3, "other", 12_000)]
    refund = {"refund_id": "r1", "items": [{"item_id": "i1", "amount": 10_000}]}
    response = await referral_client.post("/v1/orders/o1/refunds", json=refund, headers=tenant.admin)
    assert response.status_code == 201, response.text
    march = await ranking(referral_client, tenant, "team_sales", period="month", as_of="2026-03-15T00:00:00+08:00")
    assert scores(march) == [(1, "other", 12_000), (2, "mid", 6_000), (3, "top", 6_000)]
    assert scores(await ranking(referral_client, tenant, "commission", period="all"))[1:] == [
        (2, "mid", 600),
        (3, "top", 300),
    ]

    # Pages of one: the cursor walks both boards in the full ranking's order, ties (mid, top) included.
    for metric, params in (("commission", {"period": "all"}), ("team_sales", {"period": "month", "as_of": MARCH})):
        full = scores(await ranking(referral_client, tenant, metric, **params))
        paged, cursor = [], None
        for _ in range(len(full)):
            page = await ranking(
                referral_client, tenant, metric, limit=1, **params, **({"cursor": cursor} if cursor else {})
            )
            paged += scores(page)
            cursor = page["next_cursor"]
        assert (paged, cursor) == (full, None), metric
    await assert_ledger_ok(referral_client, tenant)
