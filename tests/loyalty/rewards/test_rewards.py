"""Rewards (§5.7): PUT (admin) creates or replaces, GET one and the list (client)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok

COUPON = {"name": "10 yuan off", "cost_points": 1000, "kind": "coupon", "stock": 50, "payload": {"value": 1000}}


async def put_reward(client: httpx.AsyncClient, tenant: TenantKeys, code: str, **body: Any) -> httpx.Response:
    return await client.put(f"/v1/rewards/{code}", json=body, headers=tenant.admin)


async def test_a_reward_is_created_replaced_and_read(loyalty_client, tenant) -> None:
    created = await put_reward(loyalty_client, tenant, "c10", **COUPON)
    assert created.status_code == 201, created.text
    reward = created.json()
    assert {k: reward[k] for k in ("code", "cost_points", "stock", "kind", "active", "version", "min_tier")} == {
        "code": "c10",
        "cost_points": 1000,
        "stock": 50,
        "kind": "coupon",
        "active": True,
        "version": 1,
        "min_tier": None,
    }
    same = await put_reward(loyalty_client, tenant, "c10", **COUPON)
    assert (same.status_code, same.json()["version"]) == (200, 1)

    # stock is absolute: a PUT sets what is left
    changed = await put_reward(loyalty_client, tenant, "c10", **(COUPON | {"stock": 7, "min_tier": "premium"}))
    assert (changed.status_code, changed.json()["version"], changed.json()["stock"]) == (200, 2, 7)

    read = await loyalty_client.get("/v1/rewards/c10", headers=tenant.client)
    assert read.status_code == 200 and read.headers["ETag"]
    assert read.json() == changed.json()
    missing = await loyalty_client.get("/v1/rewards/nope", headers=tenant.client)
    assert (missing.status_code, missing.json()["type"]) == (404, "reward-not-found")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_rewards_are_listed_by_code_in_pages(loyalty_client, tenant) -> None:
    for code in ("b", "a", "c"):
        assert (await put_reward(loyalty_client, tenant, code, **COUPON)).status_code == 201
    first = (await loyalty_client.get("/v1/rewards?limit=2", headers=tenant.client)).json()
    assert [r["code"] for r in first["items"]] == ["a", "b"]
    rest = (
        await loyalty_client.get(f"/v1/rewards?limit=2&cursor={first['next_cursor']}", headers=tenant.client)
    ).json()
    assert ([r["code"] for r in rest["items"]], rest["next_cursor"]) == (["c"], None)
    bad = await loyalty_client.get("/v1/rewards?cursor=garbage", headers=tenant.client)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")


async def test_reward_refusals(loyalty_client, tenant) -> None:
    by_client = await loyalty_client.put("/v1/rewards/x", json=COUPON, headers=tenant.client)
    window = await put_reward(
        loyalty_client,
        tenant,
        "x",
        **(COUPON | {"valid_from": "2026-02-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"}),
    )
    tier = await put_reward(loyalty_client, tenant, "x", **(COUPON | {"min_tier": "platinum"}))
    nul = await put_reward(loyalty_client, tenant, "x", **(COUPON | {"payload": {"a": "\u0000"}}))
    zero_cost = await put_reward(loyalty_client, tenant, "x", **(COUPON | {"cost_points": 0}))
    negative_stock = await put_reward(loyalty_client, tenant, "x", **(COUPON | {"stock": -1}))
    kind = await put_reward(loyalty_client, tenant, "x", **(COUPON | {"kind": "cash"}))
    assert (by_client.status_code, by_client.json()["type"]) == (403, "forbidden")
    assert (window.status_code, window.json()["type"]) == (422, "invalid-window")
    assert (tier.status_code, tier.json()["type"]) == (422, "tier-not-found")
    assert (nul.status_code, nul.json()["type"]) == (422, "invalid-json")
    assert (negative_stock.status_code, negative_stock.json()["type"]) == (422, "invalid-stock")
    assert {zero_cost.status_code, kind.status_code} == {400}
    assert (await loyalty_client.get("/v1/rewards/x", headers=tenant.client)).status_code == 404
