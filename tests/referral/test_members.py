"""Members (§6.2), distributors and levels (§6.3), and loyalty's signed events (§3.8)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx

from shared.events.signing import signature_headers
from shared.ledger import balances
from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register

REGISTERED = "2026-03-01T10:00:00+08:00"
ALPHABET = set("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")
SECRET = "loyalty-secret-0123456789"


async def member(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


def problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == kind


async def test_registration_is_idempotent_and_opens_accounts(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, pool: asyncpg.Pool
) -> None:
    body = {"registered_at": REGISTERED, "device_id": "dev-1", "ip": "10.0.0.1"}
    created = await referral_client.put("/v1/members/ann", json=body, headers=tenant.client)
    again = await referral_client.put("/v1/members/ann", json=body, headers=tenant.client)
    same_instant = await referral_client.put(
        "/v1/members/ann", json={"registered_at": "2026-03-01T02:00:00Z"}, headers=tenant.client
    )
    assert created.status_code == 201 and again.status_code == 200 and same_instant.status_code == 200
    assert again.json() == created.json() == same_instant.json()
    view = created.json()
    assert view == {
        "member_id": "ann",
        "invite_code": view["invite_code"],
        "registered_at": "2026-03-01T02:00:00Z",
        "inviter_id": None,
        "bound_at": None,
        "flagged": False,
        "flag_reason": None,
        "ancestors": [],
        "distributor": {"status": None, "level_code": None, "since": None, "eligible": True},
        "balances": {"currency": "CNY", "frozen": 0, "available": 0, "withdrawing": 0, "withdrawn": 0, "debt": 0},
        "team": {"level_1": 0, "level_2": 0, "level_3": 0},
        "order_count": 0,
        "paid_amount": 0,
    }
    # Another registered_at keeps the original (the member may come from a loyalty event first).
    later = await referral_client.put(
        "/v1/members/ann", json={"registered_at": "2026-03-02T10:00:00+08:00"}, headers=tenant.client
    )
    assert (later.status_code, later.json()) == (200, view)
    # The four commission accounts exist, empty, in the tenant's currency.
    codes = [f"member:ann:commission_{name}" for name in ("frozen", "available", "withdrawing", "debt")]
    async with pool.acquire() as conn:
        found = await balances(conn, tenant.tenant_id, codes)
    assert sorted(found) == sorted(codes) and {(b.asset, b.balance) for b in found.values()} == {("CNY", 0)}
    read = await referral_client.get("/v1/members/ann", headers=tenant.client)
    assert read.json() == view and read.headers["etag"].startswith('W/"')
    await assert_ledger_ok(referral_client, tenant)


async def test_invite_codes_are_unique_and_unambiguous(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    ids = [f"m{i:03d}" for i in range(300)]
    views = []
    for batch in range(0, len(ids), 50):
        views += await asyncio.gather(*(register(referral_client, tenant, m) for m in ids[batch : batch + 50]))
    codes = [v["invite_code"] for v in views]
    assert len(set(codes)) == len(codes) == 300
    assert all(len(code) == 8 and set(code) <= ALPHABET for code in codes)
    await assert_ledger_ok(referral_client, tenant)


async def test_member_view_after_commission(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await configure(referral_client, tenant)  # L1 10 %, L2 5 %
    top = await register(referral_client, tenant, "top")
    mid = await register(referral_client, tenant, "mid", invite_code=top["invite_code"])
    await register(referral_client, tenant, "buyer", invite_code=mid["invite_code"])
    order = {
        "order_id": "o1",
        "buyer_id": "buyer",
        "currency": "CNY",
        "items": [{"item_id": "i1", "amount": 10_000}],
        "paid_at": REGISTERED,
    }
    assert (await referral_client.post("/v1/orders", json=order, headers=tenant.admin)).status_code == 201
    buyer = await member(referral_client, tenant, "buyer")
    assert buyer["ancestors"] == [{"level": 1, "member_id": "mid"}, {"level": 2, "member_id": "top"}]
    assert (buyer["order_count"], buyer["paid_amount"]) == (1, 10_000)
    top_view = await member(referral_client, tenant, "top")
    assert top_view["team"] == {"level_1": 1, "level_2": 1, "level_3": 0}
    assert top_view["balances"]["frozen"] == 500 and top_view["balances"]["available"] == 0
    assert (await member(referral_client, tenant, "mid"))["balances"]["frozen"] == 1_000
    # Release after the freeze: frozen → available, then a completed withdrawal counts as withdrawn.
    released = await referral_client.post(
        "/v1/jobs/release-commission", json={"as_of": "2026-03-09T10:00:00+08:00"}, headers=tenant.admin
    )
    assert released.status_code == 200, released.text
    withdrawal = {"withdrawal_id": "w1", "amount": 400, "channel": "wechat", "account_ref": "wx-top"}
    response = await referral_client.post("/v1/members/mid/withdrawals", json=withdrawal, headers=tenant.client)
    assert response.status_code == 201, response.text
    for action, body in [("approve", {}), ("complete", {"payout_ref": "p1"})]:
        if response.json()["status"] == "approved" and action == "approve":
            continue
        done = await referral_client.post(f"/v1/withdrawals/w1/{action}", json=body, headers=tenant.admin)
        assert done.status_code == 200, done.text
    balances = (await member(referral_client, tenant, "mid"))["balances"]
    assert balances == {"currency": "CNY", "frozen": 0, "available": 600, "withdrawing": 0, "withdrawn": 400, "debt": 0}
    await assert_ledger_ok(referral_client, tenant)


async def test_unknown_member_and_other_tenants(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    await register(referral_client, tenant, "ann")
    keys = await provision(database_url, tenant.tenant_id + "o", TenantIn(name="o"), {"a": ["admin", "client"]})
    other = TenantKeys(tenant.tenant_id + "o", keys["a"], keys["a"])
    problem(await referral_client.get("/v1/members/ann", headers=other.client), 404, "member-not-found")
    problem(await referral_client.get("/v1/members/nobody", headers=tenant.client), 404, "member-not-found")
    problem(
        await referral_client.put("/v1/distributors/ann", json={"status": "active"}, headers=other.admin),
        404,
        "member-not-found",
    )
    assert (await referral_client.get("/v1/members/ann", headers={"Authorization": "Bearer nope"})).status_code == 401
    bad_id = await referral_client.get("/v1/members/a%20b", headers=tenant.client)
    assert bad_id.status_code == 400
    await assert_ledger_ok(referral_client, tenant)


async def test_distributor_levels(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    gold = {"name": "Gold", "rank": 2, "rates_bps": [1500, 500]}
    created = await referral_client.put("/v1/distributor-levels/gold", json=gold, headers=tenant.admin)
    same = await referral_client.put("/v1/distributor-levels/gold", json=gold, headers=tenant.admin)
    assert created.status_code == 201 and same.status_code == 200
    assert same.json() == created.json()
    assert created.json()["rates_bps"] == [1500, 500] and created.json()["version"] == 1
    changed = await referral_client.put(
        "/v1/distributor-levels/gold", json=gold | {"rates_bps": [2000]}, headers=tenant.admin
    )
    assert changed.json()["version"] == 2 and changed.json()["rates_bps"] == [2000]
    for rates, kind in [
        ([10_001], "invalid-rates"),
        ([-1, 100], "invalid-rates"),
        ([100, 100, 100, 100], "invalid-rates"),
        ([6000, 5000], "rates-exceed-total"),
    ]:
        refused = await referral_client.put(
            "/v1/distributor-levels/bad", json=gold | {"rates_bps": rates}, headers=tenant.admin
        )
        problem(refused, 422, kind)
    await referral_client.put(
        "/v1/distributor-levels/silver", json={"name": "Silver", "rank": 1, "rates_bps": [1000]}, headers=tenant.admin
    )
    await referral_client.put(
        "/v1/distributor-levels/bronze", json={"name": "Bronze", "rank": 0, "rates_bps": [500]}, headers=tenant.admin
    )
    first = await referral_client.get("/v1/distributor-levels", params={"limit": 2}, headers=tenant.admin)
    rest = await referral_client.get(
        "/v1/distributor-levels", params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=tenant.admin
    )
    assert [lvl["code"] for lvl in first.json()["items"] + rest.json()["items"]] == ["bronze", "silver", "gold"]
    assert rest.json()["next_cursor"] is None
    # Admin only.
    assert (await referral_client.get("/v1/distributor-levels", headers=tenant.client)).status_code == 403
    put = await referral_client.put("/v1/distributor-levels/x", json=gold, headers=tenant.client)
    assert put.status_code == 403
    await assert_ledger_ok(referral_client, tenant)


async def test_distributor_status_and_level(referral_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await configure(referral_client, tenant, eligibility="approved")
    await register(referral_client, tenant, "ann")
    await referral_client.put(
        "/v1/distributor-levels/gold", json={"name": "Gold", "rank": 1, "rates_bps": [2000]}, headers=tenant.admin
    )
    assert (await member(referral_client, tenant, "ann"))["distributor"]["eligible"] is False
    problem(
        await referral_client.put(
            "/v1/distributors/ann", json={"status": "active", "level_code": "platinum"}, headers=tenant.admin
        ),
        422,
        "unknown-level",
    )
    problem(
        await referral_client.put("/v1/distributors/ghost", json={"status": "active"}, headers=tenant.admin),
        404,
        "member-not-found",
    )
    active = await referral_client.put(
        "/v1/distributors/ann", json={"status": "active", "level_code": "gold"}, headers=tenant.admin
    )
    assert active.status_code == 200, active.text
    view = active.json()
    assert (view["member_id"], view["status"], view["level_code"], view["eligible"]) == ("ann", "active", "gold", True)
    again = await referral_client.put(
        "/v1/distributors/ann", json={"status": "active", "level_code": "gold"}, headers=tenant.admin
    )
    assert again.json()["since"] == view["since"]  # still active since the first activation
    distributor = (await member(referral_client, tenant, "ann"))["distributor"]
    assert distributor == {"status": "active", "level_code": "gold", "since": view["since"], "eligible": True}
    suspended = await referral_client.put("/v1/distributors/ann", json={"status": "suspended"}, headers=tenant.admin)
    assert (suspended.json()["status"], suspended.json()["level_code"], suspended.json()["eligible"]) == (
        "suspended",
        None,
        False,
    )
    forbidden = await referral_client.put("/v1/distributors/ann", json={"status": "active"}, headers=tenant.client)
    assert forbidden.status_code == 403
    await assert_ledger_ok(referral_client, tenant)


def envelope(tenant: TenantKeys, event_type: str = "plan.activated", **data: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "tenant_id": tenant.tenant_id,
        "occurred_at": "2026-03-05T10:00:00+08:00",
        "created_at": "2026-03-05T10:00:01+08:00",
        "data": data,
    }


async def deliver(
    client: httpx.AsyncClient, event: dict[str, Any], secret: str = SECRET, timestamp: int | None = None
) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = signature_headers(secret, event["event_id"], body, timestamp) | {"content-type": "application/json"}
    return await client.post("/v1/events/loyalty", content=body, headers=headers)


async def test_loyalty_plan_activation_makes_a_distributor(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await configure(referral_client, tenant, eligibility="approved", loyalty_events_secret=SECRET)
    await referral_client.put(
        "/v1/distributor-levels/gold", json={"name": "Gold", "rank": 1, "rates_bps": [2000]}, headers=tenant.admin
    )
    await register(referral_client, tenant, "ann")
    await referral_client.put(
        "/v1/distributors/ann", json={"status": "suspended", "level_code": "gold"}, headers=tenant.admin
    )

    # A known member: activated, level kept.
    event = envelope(tenant, member_id="ann", plan_id="vip", grants_distribution=True)
    applied = await deliver(referral_client, event)
    assert applied.status_code == 200, applied.text
    assert applied.json() == {"event_id": event["event_id"], "action": "distributor-activated", "member_id": "ann"}
    ann = await member(referral_client, tenant, "ann")
    assert ann["distributor"] | {"since": None} == {
        "status": "active",
        "level_code": "gold",
        "since": None,
        "eligible": True,
    }

    # A redelivery of the same event changes nothing and answers the same, byte for byte.
    await referral_client.put(
        "/v1/distributors/ann", json={"status": "suspended", "level_code": "gold"}, headers=tenant.admin
    )
    replay = await deliver(referral_client, event)
    assert (replay.status_code, replay.content) == (200, applied.content)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await member(referral_client, tenant, "ann"))["distributor"]["status"] == "suspended"

    # An unknown member is registered at occurred_at, then activated.
    newcomer = await deliver(referral_client, envelope(tenant, member_id="neo", grants_distribution=True))
    assert newcomer.json()["action"] == "distributor-activated"
    neo = await member(referral_client, tenant, "neo")
    assert neo["registered_at"] == "2026-03-05T02:00:00Z" and neo["distributor"]["status"] == "active"
    assert len(neo["invite_code"]) == 8
    # The shop's own registration afterwards succeeds and keeps the member as the event made it.
    shop = await referral_client.put("/v1/members/neo", json={"registered_at": REGISTERED}, headers=tenant.client)
    assert (shop.status_code, shop.json()) == (200, neo)

    # Other events, or plans without distribution rights, are acknowledged and ignored.
    for ignored in [
        envelope(tenant, "points.earned", member_id="zed", points=10),
        envelope(tenant, member_id="zed", grants_distribution=False),
    ]:
        response = await deliver(referral_client, ignored)
        assert response.json() == {"event_id": ignored["event_id"], "action": "ignored", "member_id": None}
    assert (await referral_client.get("/v1/members/zed", headers=tenant.client)).status_code == 404
    malformed = await deliver(referral_client, envelope(tenant, member_id="a b", grants_distribution=True))
    problem(malformed, 422, "invalid-event")
    await assert_ledger_ok(referral_client, tenant)


async def test_loyalty_events_need_a_fresh_valid_signature(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    await configure(referral_client, tenant, loyalty_events_secret=SECRET)
    await register(referral_client, tenant, "ann")
    event = envelope(tenant, member_id="ann", grants_distribution=True)
    problem(await deliver(referral_client, event, secret="another-secret-0123456789"), 401, "invalid-signature")
    problem(await deliver(referral_client, event, timestamp=int(time.time()) - 600), 401, "invalid-signature")
    # The body is signed: a change after signing is refused.
    body = json.dumps(event).encode()
    headers = signature_headers(SECRET, event["event_id"], body) | {"content-type": "application/json"}
    tampered = json.dumps(event | {"data": {"member_id": "mallory", "grants_distribution": True}}).encode()
    problem(
        await referral_client.post("/v1/events/loyalty", content=tampered, headers=headers), 401, "invalid-signature"
    )
    # The signed id must be the envelope's event id.
    other_id = signature_headers(SECRET, "another-id", body) | {"content-type": "application/json"}
    problem(await referral_client.post("/v1/events/loyalty", content=body, headers=other_id), 401, "invalid-signature")
    unsigned = await referral_client.post(
        "/v1/events/loyalty", content=body, headers={"content-type": "application/json"}
    )
    problem(unsigned, 401, "invalid-signature")
    # A tenant without a secret, and one that does not exist, answer the same.
    keys = await provision(database_url, tenant.tenant_id + "n", TenantIn(name="n"), {"a": ["admin", "client"]})
    assert keys["a"]
    no_secret = envelope(tenant, member_id="ann", grants_distribution=True) | {"tenant_id": tenant.tenant_id + "n"}
    problem(await deliver(referral_client, no_secret), 401, "invalid-signature")
    nowhere = envelope(tenant, member_id="ann", grants_distribution=True) | {"tenant_id": "no-such-tenant"}
    problem(await deliver(referral_client, nowhere), 401, "invalid-signature")
    assert (await member(referral_client, tenant, "ann"))["distributor"]["status"] is None
    # Nothing was claimed by the refused deliveries: the genuine one still applies.
    assert (await deliver(referral_client, event)).json()["action"] == "distributor-activated"
    await assert_ledger_ok(referral_client, tenant)
