"""Binding (§6.2): modes, lifetime, eligibility, daily cap, flags, cycles at any depth, concurrency.

Each test configures its tenant's programme, registers members over HTTP and binds them through
POST /v1/bindings (or registration with a code), then checks what a shop would see: the member's
inviter and ancestors, problem types, and the events on the outbox.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register

REGISTERED = "2026-03-01T10:00:00+08:00"


async def events(pool: asyncpg.Pool, tenant: TenantKeys, *types: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT type, data FROM events WHERE tenant_id = $1 AND type = ANY($2::text[]) ORDER BY seq",
            tenant.tenant_id,
            list(types),
        )
    return [{"type": row["type"], **row["data"]} for row in rows]


async def bind(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    invitee: str,
    inviter: str | None = None,
    *,
    occurred_at: str = REGISTERED,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"invitee_id": invitee, "occurred_at": occurred_at, **extra}
    if inviter is not None:
        body["inviter_id"] = inviter
    return await client.post("/v1/bindings", json=body, headers=tenant.client)


async def member(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


def problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == kind


async def members(client: httpx.AsyncClient, tenant: TenantKeys, *ids: str, at: str = REGISTERED) -> None:
    for member_id in ids:
        await register(client, tenant, member_id, registered_at=at)


async def chain(client: httpx.AsyncClient, tenant: TenantKeys, *ids: str) -> None:
    """Register ids[0] ← ids[1] ← ... : each member invited by the one before."""
    await register(client, tenant, ids[0], registered_at=REGISTERED)
    for inviter, invitee in zip(ids, ids[1:], strict=False):
        await register(client, tenant, invitee, registered_at=REGISTERED)
        response = await bind(client, tenant, invitee, inviter)
        assert response.status_code == 201, response.text


async def test_self_referral_is_refused(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    ann = await register(referral_client, tenant, "ann")
    by_id = await bind(referral_client, tenant, "ann", "ann")
    by_code = await bind(referral_client, tenant, "ann", invite_code=ann["invite_code"])
    problem(by_id, 422, "self-referral")
    problem(by_code, 422, "self-referral")
    assert (await member(referral_client, tenant, "ann"))["inviter_id"] is None
    await assert_ledger_ok(referral_client, tenant)


async def test_cycle_at_depth_three_is_refused(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    # B invited by A, C invited by B; A (a root, so not bound yet) may not join C's team.
    await chain(referral_client, tenant, "a", "b", "c")
    refused = await bind(referral_client, tenant, "a", "c")
    problem(refused, 422, "referral-cycle")
    a = await member(referral_client, tenant, "a")
    assert a["inviter_id"] is None and a["ancestors"] == []
    assert a["team"] == {"level_1": 1, "level_2": 1, "level_3": 0}
    await assert_ledger_ok(referral_client, tenant)


async def test_cycle_deeper_than_the_closure_table_is_refused(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # m0 ← m1 ← ... ← m6: m0 is six levels above m6, beyond the depth-3 closure rows.
    ids = [f"m{i}" for i in range(7)]
    await chain(referral_client, tenant, *ids)
    problem(await bind(referral_client, tenant, "m0", "m6"), 422, "referral-cycle")
    problem(await bind(referral_client, tenant, "m0", "m4"), 422, "referral-cycle")
    await configure(referral_client, tenant, binding={"mode": "override"})
    # A rebinding inside the tree: m2 under its own descendant m5 (depth 3) or m6 (depth 4).
    problem(await bind(referral_client, tenant, "m2", "m5"), 422, "referral-cycle")
    problem(await bind(referral_client, tenant, "m2", "m6"), 422, "referral-cycle")
    assert (await member(referral_client, tenant, "m2"))["inviter_id"] == "m1"
    # Moving a member under someone outside its own subtree is fine.
    await register(referral_client, tenant, "x")
    assert (await bind(referral_client, tenant, "m2", "x")).status_code == 201
    assert (await bind(referral_client, tenant, "x", "m0")).status_code == 201
    problem(await bind(referral_client, tenant, "m0", "m6"), 422, "referral-cycle")
    await assert_ledger_ok(referral_client, tenant)


async def test_first_bind_keeps_the_first_inviter(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await members(referral_client, tenant, "ann", "bob", "cy")
    first = await bind(referral_client, tenant, "cy", "ann")
    again = await bind(referral_client, tenant, "cy", "ann", occurred_at="2026-03-05T10:00:00+08:00")
    other = await bind(referral_client, tenant, "cy", "bob")
    assert first.status_code == 201
    assert first.json() == {
        "invitee_id": "cy",
        "inviter_id": "ann",
        "previous_inviter_id": None,
        "bound_at": "2026-03-01T02:00:00Z",
        "flagged": False,
        "flag_reason": None,
    }
    assert (again.status_code, again.json()) == (200, first.json())
    problem(other, 409, "already-bound")
    cy = await member(referral_client, tenant, "cy")
    assert cy["inviter_id"] == "ann" and cy["ancestors"] == [{"level": 1, "member_id": "ann"}]
    await assert_ledger_ok(referral_client, tenant)


async def test_override_replaces_the_inviter(referral_client: httpx.AsyncClient, tenant: TenantKeys, pool) -> None:
    await configure(referral_client, tenant, binding={"mode": "override"})
    await chain(referral_client, tenant, "ann", "bob")
    await members(referral_client, tenant, "cy", "dan")
    assert (await bind(referral_client, tenant, "cy", "ann")).status_code == 201
    moved = await bind(referral_client, tenant, "cy", "dan", occurred_at="2026-03-02T10:00:00+08:00")
    assert moved.status_code == 201 and moved.json()["previous_inviter_id"] == "ann"
    moved_again = await bind(referral_client, tenant, "cy", "bob", occurred_at="2026-03-03T10:00:00+08:00")
    assert moved_again.json()["previous_inviter_id"] == "dan"
    cy = await member(referral_client, tenant, "cy")
    assert cy["inviter_id"] == "bob" and cy["bound_at"] == "2026-03-03T02:00:00Z"
    assert cy["ancestors"] == [{"level": 1, "member_id": "bob"}, {"level": 2, "member_id": "ann"}]
    assert (await member(referral_client, tenant, "dan"))["team"]["level_1"] == 0
    assert (await member(referral_client, tenant, "ann"))["team"] == {"level_1": 1, "level_2": 1, "level_3": 0}
    bound = await events(pool, tenant, "referral.bound")
    assert [(e["invitee_id"], e["inviter_id"], e["previous_inviter_id"]) for e in bound if e["invitee_id"] == "cy"] == [
        ("cy", "ann", None),
        ("cy", "dan", "ann"),
        ("cy", "bob", "dan"),
    ]
    await assert_ledger_ok(referral_client, tenant)


async def test_register_window_accepts_the_edge_and_refuses_a_second_later(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await configure(referral_client, tenant, binding={"mode": "register_window", "register_window_seconds": 30})
    await members(referral_client, tenant, "ann", "edge", "late", at="2026-03-01T10:00:00+08:00")
    at_edge = await bind(referral_client, tenant, "edge", "ann", occurred_at="2026-03-01T10:00:30+08:00")
    late = await bind(referral_client, tenant, "late", "ann", occurred_at="2026-03-01T10:00:31+08:00")
    assert at_edge.status_code == 201, at_edge.text
    problem(late, 422, "binding-window-closed")
    assert (await member(referral_client, tenant, "late"))["inviter_id"] is None
    # Registration with a code binds at registered_at: always inside the window.
    ann = await member(referral_client, tenant, "ann")
    fresh = await register(referral_client, tenant, "fresh", invite_code=ann["invite_code"])
    assert fresh["inviter_id"] == "ann"
    # Within the window the first binding still stands.
    await register(referral_client, tenant, "bob", registered_at="2026-03-01T10:00:00+08:00")
    problem(
        await bind(referral_client, tenant, "edge", "bob", occurred_at="2026-03-01T10:00:10+08:00"),
        409,
        "already-bound",
    )
    await assert_ledger_ok(referral_client, tenant)


async def test_lifetime_lets_a_new_inviter_bind_after_expiry(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await configure(referral_client, tenant, binding={"mode": "first_bind", "lifetime_days": 30})
    await members(referral_client, tenant, "ann", "bob", "cy")
    assert (
        await bind(referral_client, tenant, "cy", "ann", occurred_at="2026-03-01T10:00:00+08:00")
    ).status_code == 201
    early = await bind(referral_client, tenant, "cy", "bob", occurred_at="2026-03-31T09:59:59+08:00")
    problem(early, 409, "already-bound")
    expired = await bind(referral_client, tenant, "cy", "bob", occurred_at="2026-03-31T10:00:00+08:00")
    assert expired.status_code == 201 and expired.json()["previous_inviter_id"] == "ann"
    cy = await member(referral_client, tenant, "cy")
    assert cy["inviter_id"] == "bob" and cy["bound_at"] == "2026-03-31T02:00:00Z"
    # The new binding has a lifetime of its own.
    problem(
        await bind(referral_client, tenant, "cy", "ann", occurred_at="2026-04-01T10:00:00+08:00"), 409, "already-bound"
    )
    await assert_ledger_ok(referral_client, tenant)


async def test_approved_eligibility_needs_an_active_distributor(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await configure(referral_client, tenant, eligibility="approved")
    await members(referral_client, tenant, "ann", "bob", "cy")
    problem(await bind(referral_client, tenant, "bob", "ann"), 422, "inviter-not-eligible")
    # Registration with the code of a non-distributor is refused as a whole: no member is created.
    ann = await member(referral_client, tenant, "ann")
    refused = await referral_client.put(
        "/v1/members/dan", json={"registered_at": REGISTERED, "invite_code": ann["invite_code"]}, headers=tenant.client
    )
    problem(refused, 422, "inviter-not-eligible")
    assert (await referral_client.get("/v1/members/dan", headers=tenant.client)).status_code == 404

    activated = await referral_client.put("/v1/distributors/ann", json={"status": "active"}, headers=tenant.admin)
    assert activated.status_code == 200 and activated.json()["eligible"] is True
    assert (await bind(referral_client, tenant, "bob", "ann")).status_code == 201
    dan = await register(referral_client, tenant, "dan", invite_code=ann["invite_code"].lower())
    assert dan["inviter_id"] == "ann"

    suspended = await referral_client.put("/v1/distributors/ann", json={"status": "suspended"}, headers=tenant.admin)
    assert suspended.json()["eligible"] is False
    problem(await bind(referral_client, tenant, "cy", "ann"), 422, "inviter-not-eligible")
    assert (await member(referral_client, tenant, "ann"))["distributor"]["status"] == "suspended"
    await assert_ledger_ok(referral_client, tenant)


async def test_a_suspended_inviter_is_refused_even_under_everyone(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await members(referral_client, tenant, "ann", "bob", "cy")
    assert (await member(referral_client, tenant, "ann"))["distributor"]["eligible"] is True
    assert (await bind(referral_client, tenant, "bob", "ann")).status_code == 201
    await referral_client.put("/v1/distributors/ann", json={"status": "suspended"}, headers=tenant.admin)
    problem(await bind(referral_client, tenant, "cy", "ann"), 422, "inviter-not-eligible")
    # Existing invitees stay in the team.
    assert (await member(referral_client, tenant, "ann"))["team"]["level_1"] == 1
    await assert_ledger_ok(referral_client, tenant)


async def test_daily_cap_counts_the_tenant_local_day(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    # The tenant is in Asia/Shanghai (UTC+8): 23:30 and 00:10 local are one UTC day but two local days.
    await configure(referral_client, tenant, binding={"daily_cap_per_inviter": 2})
    await members(referral_client, tenant, "ann", "i1", "i2", "i3", "i4", "bob", "i5", at="2026-03-01T08:00:00+08:00")
    assert (
        await bind(referral_client, tenant, "i1", "ann", occurred_at="2026-03-01T09:00:00+08:00")
    ).status_code == 201
    assert (
        await bind(referral_client, tenant, "i2", "ann", occurred_at="2026-03-01T23:30:00+08:00")
    ).status_code == 201
    problem(
        await bind(referral_client, tenant, "i3", "ann", occurred_at="2026-03-01T23:59:59+08:00"),
        422,
        "binding-cap-reached",
    )
    # 2026-03-02T00:10+08:00 is 2026-03-01T16:10Z: the same UTC day, the next local day.
    next_day = await bind(referral_client, tenant, "i3", "ann", occurred_at="2026-03-01T16:10:00Z")
    assert next_day.status_code == 201, next_day.text
    # Another inviter has a cap of their own.
    assert (
        await bind(referral_client, tenant, "i4", "bob", occurred_at="2026-03-01T23:00:00+08:00")
    ).status_code == 201
    # Registration with a code counts too.
    ann = await member(referral_client, tenant, "ann")
    await register(
        referral_client, tenant, "i6", registered_at="2026-03-02T09:00:00+08:00", invite_code=ann["invite_code"]
    )
    refused = await referral_client.put(
        "/v1/members/i7",
        json={"registered_at": "2026-03-02T10:00:00+08:00", "invite_code": ann["invite_code"]},
        headers=tenant.client,
    )
    problem(refused, 422, "binding-cap-reached")
    assert (await member(referral_client, tenant, "ann"))["team"]["level_1"] == 4
    await assert_ledger_ok(referral_client, tenant)


async def test_shared_device_or_ip_is_bound_but_flagged(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, pool
) -> None:
    await register(referral_client, tenant, "ann", device_id="dev-1", ip="10.0.0.1")
    await members(referral_client, tenant, "bob", "cy", "dan")
    same_device = await bind(referral_client, tenant, "bob", "ann", device_id="dev-1", ip="10.9.9.9")
    same_both = await bind(referral_client, tenant, "cy", "ann", device_id="dev-1", ip="10.0.0.1")
    clean = await bind(referral_client, tenant, "dan", "ann", device_id="dev-2", ip="10.0.0.2")
    assert same_device.status_code == 201 and same_device.json()["flag_reason"] == "same-device"
    assert same_both.json()["flagged"] is True and same_both.json()["flag_reason"] == "same-device,same-ip"
    assert clean.json()["flagged"] is False
    # Registration with a code compares the registration's device and ip.
    ann = await member(referral_client, tenant, "ann")
    eve = await register(referral_client, tenant, "eve", invite_code=ann["invite_code"], ip="10.0.0.1")
    assert (eve["inviter_id"], eve["flagged"], eve["flag_reason"]) == ("ann", True, "same-ip")
    bob = await member(referral_client, tenant, "bob")
    assert (bob["inviter_id"], bob["flagged"], bob["flag_reason"]) == ("ann", True, "same-device")

    flagged = await events(pool, tenant, "referral.flagged")
    assert flagged == [
        {"type": "referral.flagged", "invitee_id": "bob", "inviter_id": "ann", "reason": "same-device"},
        {"type": "referral.flagged", "invitee_id": "cy", "inviter_id": "ann", "reason": "same-device,same-ip"},
        {"type": "referral.flagged", "invitee_id": "eve", "inviter_id": "ann", "reason": "same-ip"},
    ]
    bound = {e["invitee_id"]: e for e in await events(pool, tenant, "referral.bound")}
    assert {k: v["flagged"] for k, v in bound.items()} == {"bob": True, "cy": True, "dan": False, "eve": True}
    assert bound["dan"] == {
        "type": "referral.bound",
        "invitee_id": "dan",
        "inviter_id": "ann",
        "previous_inviter_id": None,
        "occurred_at": "2026-03-01T02:00:00Z",
        "flagged": False,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_unknown_members_and_codes(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await members(referral_client, tenant, "ann")
    problem(await bind(referral_client, tenant, "ghost", "ann"), 404, "member-not-found")
    problem(await bind(referral_client, tenant, "ann", "ghost"), 404, "member-not-found")
    problem(await bind(referral_client, tenant, "ann", invite_code="ZZZZZZZZ"), 422, "unknown-invite-code")
    problem(await bind(referral_client, tenant, "ann"), 422, "invalid-inviter")
    both = await bind(referral_client, tenant, "ann", "bob", invite_code="ZZZZZZZZ")
    problem(both, 422, "invalid-inviter")
    unknown_code = await referral_client.put(
        "/v1/members/bob", json={"registered_at": REGISTERED, "invite_code": "ZZZZZZZZ"}, headers=tenant.client
    )
    problem(unknown_code, 422, "unknown-invite-code")
    assert (await referral_client.get("/v1/members/bob", headers=tenant.client)).status_code == 404
    await assert_ledger_ok(referral_client, tenant)


async def test_concurrent_bindings_of_one_invitee_one_wins(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, pool
) -> None:
    inviters = [f"inviter-{i}" for i in range(10)]
    await members(referral_client, tenant, "target", *inviters)
    responses = await asyncio.gather(*(bind(referral_client, tenant, "target", inviter) for inviter in inviters))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [r.text for r in responses]
    winner = next(r.json()["inviter_id"] for r in responses if r.status_code == 201)
    assert all(r.json()["type"] == "already-bound" for r in responses if r.status_code == 409)
    target = await member(referral_client, tenant, "target")
    assert target["inviter_id"] == winner and target["ancestors"] == [{"level": 1, "member_id": winner}]
    assert len(await events(pool, tenant, "referral.bound")) == 1
    for inviter in inviters:
        assert (await member(referral_client, tenant, inviter))["team"]["level_1"] == (inviter == winner)
    await assert_ledger_ok(referral_client, tenant)


async def test_concurrent_opposite_rebindings_never_close_a_cycle(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Under override, x under y's invitee and y under x's invitee at once: at most one can win.
    await configure(referral_client, tenant, binding={"mode": "override"})
    for i in range(5):
        x, y = f"x{i}", f"y{i}"
        await chain(referral_client, tenant, x, f"{x}-1")
        await chain(referral_client, tenant, y, f"{y}-1")
        first, second = await asyncio.gather(
            bind(referral_client, tenant, x, f"{y}-1"), bind(referral_client, tenant, y, f"{x}-1")
        )
        assert sorted([first.status_code, second.status_code]) == [201, 422], (first.text, second.text)
        loser = x if first.status_code == 422 else y
        problem(first if loser == x else second, 422, "referral-cycle")
        assert (await member(referral_client, tenant, loser))["inviter_id"] is None
    await assert_ledger_ok(referral_client, tenant)


async def test_idempotency_key_replays_the_first_answer(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await configure(referral_client, tenant, binding={"mode": "override"})
    await members(referral_client, tenant, "ann", "bob", "cy")
    key = {"Idempotency-Key": "bind-cy-1"}
    body = {"invitee_id": "cy", "inviter_id": "ann", "occurred_at": REGISTERED}
    first = await referral_client.post("/v1/bindings", json=body, headers=tenant.client | key)
    moved = await bind(referral_client, tenant, "cy", "bob", occurred_at="2026-03-02T10:00:00+08:00")
    replay = await referral_client.post("/v1/bindings", json=body, headers=tenant.client | key)
    assert first.status_code == 201 and moved.status_code == 201
    assert (replay.status_code, replay.content) == (201, first.content)
    assert replay.headers["idempotent-replayed"] == "true"
    # The replay changed nothing: cy stays with bob.
    assert (await member(referral_client, tenant, "cy"))["inviter_id"] == "bob"
    other = await referral_client.post("/v1/bindings", json=body | {"inviter_id": "bob"}, headers=tenant.client | key)
    problem(other, 409, "idempotency-conflict")
    # A refusal is pinned to its key.
    self_ref = {"invitee_id": "cy", "inviter_id": "cy", "occurred_at": REGISTERED}
    refused = await referral_client.post(
        "/v1/bindings", json=self_ref, headers=tenant.client | {"Idempotency-Key": "k2"}
    )
    again = await referral_client.post("/v1/bindings", json=self_ref, headers=tenant.client | {"Idempotency-Key": "k2"})
    problem(refused, 422, "self-referral")
    assert again.content == refused.content
    await assert_ledger_ok(referral_client, tenant)


async def test_bindings_are_invisible_across_tenants(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"c": ["client"]})
    other = TenantKeys(tenant.tenant_id + "x", keys["c"], keys["c"])
    ann = await register(referral_client, tenant, "ann")
    await register(referral_client, other, "bob")
    problem(await bind(referral_client, other, "bob", "ann"), 404, "member-not-found")
    problem(await bind(referral_client, other, "bob", invite_code=ann["invite_code"]), 422, "unknown-invite-code")
    assert (await referral_client.get("/v1/members/ann", headers=other.client)).status_code == 404
    assert (await referral_client.get("/v1/members/ann/team", headers=other.client)).status_code == 404
    # Member ids are per tenant: the other tenant may register its own "ann".
    assert (await register(referral_client, other, "ann"))["inviter_id"] is None
    assert (await member(referral_client, tenant, "ann"))["team"]["level_1"] == 0
    await assert_ledger_ok(referral_client, tenant)
