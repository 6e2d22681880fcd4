"""Adjustments (§5.9): admin credits and debits with a reason and the operator recorded, idempotent by
`adjustment_id`, never overdrawing, optionally counting toward the tier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.loyalty import accounts
from shared.ledger import Leg, post_entry
from tests.conftest import TenantKeys
from tests.harness import SyncHarness as Harness
from tests.loyalty.conftest import assert_ledger_ok, configure, earn, put_member

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
FAR = datetime(2030, 1, 1, tzinfo=UTC)


async def adjust(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, adjustment_id: str, points: int, **extra: Any
) -> httpx.Response:
    body = {"adjustment_id": adjustment_id, "points": points, "reason": "goodwill", **extra}
    return await client.post(f"/v1/members/{member_id}/adjustments", json=body, headers=tenant.admin)


async def member(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


async def written(pool: asyncpg.Pool, tenant_id: str) -> tuple[int, int, int, int]:
    """(adjustments, points.adjust entries, adjustment allocations, points.adjusted events)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM adjustments WHERE tenant_id = $1) AS a,
                      (SELECT count(*) FROM entries WHERE tenant_id = $1 AND kind = 'points.adjust') AS e,
                      (SELECT count(*) FROM lot_allocations WHERE tenant_id = $1 AND purpose = 'adjustment') AS l,
                      (SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'points.adjusted') AS v""",
            tenant_id,
        )
    return row["a"], row["e"], row["l"], row["v"]


async def test_a_credit_becomes_a_lot_expiring_by_the_programme(loyalty_client, loyalty_pool, tenant) -> None:
    await configure(loyalty_client, tenant, expiry={"kind": "rolling_days", "n": 30})
    await put_member(loyalty_client, tenant, "m1")
    response = await adjust(loyalty_client, tenant, "m1", "adj-1", 250, reason="  service failure  ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in ("adjustment_id", "member_id", "points", "reason", "qualifying", "debt_repaid")} == {
        "adjustment_id": "adj-1",
        "member_id": "m1",
        "points": 250,
        "reason": "service failure",
        "qualifying": False,
        "debt_repaid": 0,
    }
    assert body["operator"] and body["lot_id"] and body["tier_change"] is None
    view = await member(loyalty_client, tenant, "m1")
    assert view["balances"]["available"] == 250
    assert [e["points"] for e in view["expiring"]] == [250]  # 30 rolling days: inside the view's 30 days
    assert view["qualifying"]["points"] == 0  # not flagged: does not count toward the tier

    history = (await loyalty_client.get("/v1/members/m1/transactions", headers=tenant.client)).json()["items"]
    assert [(h["kind"], h["amount"], h["reason"], h["source_ref"]) for h in history] == [
        ("points.adjust", 250, "service failure", "adjustment:adj-1")
    ]
    async with loyalty_pool.acquire() as conn:
        [event] = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = 'points.adjusted'", tenant.tenant_id
        )
        operator = await conn.fetchval(
            "SELECT operator FROM adjustments WHERE tenant_id = $1 AND adjustment_id = 'adj-1'", tenant.tenant_id
        )
    assert (event["data"]["points"], event["data"]["operator"]) == (250, body["operator"])
    assert operator == body["operator"]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_debit_takes_the_first_expiring_points(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn, conn.transaction():
        later = await earn(conn, t, "m1", 100, EARNED, FAR)
        sooner = await earn(conn, t, "m1", 50, EARNED, datetime(2029, 1, 1, tzinfo=UTC))
    response = await adjust(loyalty_client, tenant, "m1", "adj-1", -70, reason="fraudulent order")
    assert response.status_code == 201, response.text
    assert (response.json()["points"], response.json()["lot_id"]) == (-70, None)
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 80
    async with loyalty_pool.acquire() as conn:
        rows = await conn.fetch("SELECT lot_id, remaining FROM lots WHERE tenant_id = $1", t)
    assert {r["lot_id"]: r["remaining"] for r in rows} == {sooner: 0, later: 80}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_debit_beyond_available_is_refused_with_nothing_written(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn, conn.transaction():
        await earn(conn, t, "m1", 100, EARNED, FAR)
    refused = await adjust(loyalty_client, tenant, "m1", "adj-1", -101)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "insufficient-points"
    assert await written(loyalty_pool, t) == (0, 0, 0, 0)
    assert (await member(loyalty_client, tenant, "m1"))["balances"] == {
        "available": 100,
        "pending": 0,
        "held": 0,
        "debt": 0,
    }

    # The refusal is pinned to the id: even once the points are there, the same id answers the same.
    await adjust(loyalty_client, tenant, "m1", "adj-2", 1)
    again = await adjust(loyalty_client, tenant, "m1", "adj-1", -101)
    assert (again.status_code, again.json(), again.headers.get("idempotent-replayed")) == (
        409,
        refused.json(),
        "true",
    )
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 101
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_retry_returns_the_first_answer_and_writes_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    first = await adjust(loyalty_client, tenant, "m1", "adj-1", 40)
    second = await adjust(loyalty_client, tenant, "m1", "adj-1", 40)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.content == first.content and second.headers.get("idempotent-replayed") == "true"
    assert await written(loyalty_pool, tenant.tenant_id) == (1, 1, 0, 1)
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 40

    conflict = await adjust(loyalty_client, tenant, "m1", "adj-1", 41)
    assert (conflict.status_code, conflict.json()["type"]) == (409, "idempotency-conflict")
    await put_member(loyalty_client, tenant, "m2")
    elsewhere = await adjust(loyalty_client, tenant, "m2", "adj-1", 40)
    assert (elsewhere.status_code, elsewhere.json()["type"]) == (409, "idempotency-conflict")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_credit_repays_open_debt_first(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn:  # a clawback's shortfall, as refunds will book it
        await post_entry(
            conn,
            t,
            kind="points.reverse",
            idempotency_key="test:debt",
            legs=[Leg(accounts.debt("m1"), 30), Leg(accounts.ISSUED, -30)],
        )
    response = await adjust(loyalty_client, tenant, "m1", "adj-1", 100)
    assert response.status_code == 201, response.text
    assert (response.json()["debt_repaid"], response.json()["points"]) == (30, 100)
    balances = (await member(loyalty_client, tenant, "m1"))["balances"]
    assert (balances["available"], balances["debt"]) == (70, 0)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_refusals_of_the_body(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    for n, reason in enumerate(("", "   ")):
        blank = await adjust(loyalty_client, tenant, "m1", f"adj-r{n}", 10, reason=reason)
        assert (blank.status_code, blank.json()["type"]) == (422, "reason-required")
    zero = await adjust(loyalty_client, tenant, "m1", "adj-z", 0)
    assert (zero.status_code, zero.json()["type"]) == (422, "invalid-amount")
    nul = await adjust(loyalty_client, tenant, "m1", "adj-n", 10, reason="a\x00b")
    assert (nul.status_code, nul.json()["type"]) == (422, "invalid-reason")
    missing = await loyalty_client.post(
        "/v1/members/m1/adjustments", json={"adjustment_id": "adj-m", "points": 10}, headers=tenant.admin
    )
    assert missing.status_code == 400  # no reason at all: a malformed body
    unknown = await adjust(loyalty_client, tenant, "nobody", "adj-u", 10)
    assert (unknown.status_code, unknown.json()["type"]) == (404, "member-not-found")
    assert (await member(loyalty_client, tenant, "m1"))["balances"]["available"] == 0
    assert (await written(loyalty_pool, tenant.tenant_id)) == (0, 0, 0, 0)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_only_admins_adjust_or_list(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    body = {"adjustment_id": "adj-1", "points": 10, "reason": "goodwill"}
    response = await loyalty_client.post("/v1/members/m1/adjustments", json=body, headers=tenant.client)
    assert (response.status_code, response.json()["type"]) == (403, "forbidden")
    listed = await loyalty_client.get("/v1/members/m1/adjustments", headers=tenant.client)
    assert listed.status_code == 403
    assert (await written(loyalty_pool, tenant.tenant_id)) == (0, 0, 0, 0)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_qualifying_credit_counts_toward_the_tier_and_upgrades(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    plain = await adjust(loyalty_client, tenant, "m1", "adj-0", 5000)
    assert plain.json()["tier_change"] is None
    assert (await member(loyalty_client, tenant, "m1"))["tier"]["code"] == "normal"

    below = await adjust(loyalty_client, tenant, "m1", "adj-1", 999, qualifying=True)
    assert below.json()["tier_change"] is None
    crossed = await adjust(loyalty_client, tenant, "m1", "adj-2", 1, qualifying=True)
    assert crossed.status_code == 201, crossed.text
    assert crossed.json()["tier_change"] == {"from_tier": "normal", "to_tier": "premium"}
    view = await member(loyalty_client, tenant, "m1")
    assert (view["tier"]["code"], view["qualifying"]["points"]) == ("premium", 1000)

    taken = await adjust(loyalty_client, tenant, "m1", "adj-3", -400, qualifying=True)
    assert taken.status_code == 201, taken.text
    view = await member(loyalty_client, tenant, "m1")
    # the qualifying points drop; the tier stays until the evaluation job decides (§5.2 grace)
    assert (view["tier"]["code"], view["qualifying"]["points"], view["balances"]["available"]) == ("premium", 600, 5600)
    async with loyalty_pool.acquire() as conn:
        changes = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = 'member.tier_changed'", tenant.tenant_id
        )
    assert [(c["data"]["from_tier"], c["data"]["to_tier"]) for c in changes] == [("normal", "premium")]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_list_pages_newest_first(loyalty_client, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    for n in range(5):
        assert (await adjust(loyalty_client, tenant, "m1", f"adj-{n}", n + 1)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await loyalty_client.get("/v1/members/m1/adjustments", params=params, headers=tenant.admin)).json()
        seen += [item["adjustment_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"adj-{n}" for n in reversed(range(5))]
    bad = await loyalty_client.get("/v1/members/m1/adjustments", params={"cursor": "nope"}, headers=tenant.admin)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")
    missing = await loyalty_client.get("/v1/members/nobody/adjustments", headers=tenant.admin)
    assert (missing.status_code, missing.json()["type"]) == (404, "member-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


@pytest.fixture(scope="module")
def harness(database_url: str) -> Iterator[Harness]:
    with Harness("loyalty", database_url) as h:
        yield h


async def _adjustments_scenario(h: Harness, moves: list[int]) -> None:
    client, tenant = h.client, await h.tenant()
    await put_member(client, tenant, "m1")
    model = 0
    for n, points in enumerate(moves):
        response = await adjust(client, tenant, "m1", f"adj-{n}", points)
        if points < 0 and -points > model:
            assert (response.status_code, response.json()["type"]) == (409, "insufficient-points")
        else:
            assert response.status_code == 201, response.text
            model += points
    assert (await member(client, tenant, "m1"))["balances"]["available"] == model
    await assert_ledger_ok(client, tenant)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.integers(min_value=-300, max_value=300).filter(bool), min_size=1, max_size=8))
def test_available_is_the_sum_of_accepted_adjustments(harness: Harness, moves: list[int]) -> None:
    """A debit is accepted exactly when it fits in what is available; the balance follows the model."""
    harness.run(_adjustments_scenario(harness, moves))
