"""Tiers (§5.2): the defaults, unique ranks, thresholds rising with rank, admin-only writes."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok


async def _put(client: httpx.AsyncClient, tenant: TenantKeys, code: str, **body) -> httpx.Response:
    return await client.put(f"/v1/tiers/{code}", json=body, headers=tenant.admin)


async def _tiers(client: httpx.AsyncClient, tenant: TenantKeys) -> list[dict]:
    response = await client.get("/v1/tiers", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_new_tenant_has_normal_premium_and_elite(loyalty_client, tenant) -> None:
    tiers = await _tiers(loyalty_client, tenant)
    assert [(t["code"], t["rank"], t["threshold"], t["multiplier_bps"]) for t in tiers] == [
        ("normal", 0, 0, 10000),
        ("premium", 1, 1000, 10000),
        ("elite", 2, 5000, 10000),
    ]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_admin_sets_thresholds_and_adds_tiers(loyalty_client, tenant) -> None:
    changed = await _put(
        loyalty_client,
        tenant,
        "premium",
        name="Gold",
        rank=1,
        threshold=2000,
        multiplier_bps=12500,
        benefits={"free_shipping": True},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["version"], changed.json()["benefits"]) == (
        "Gold",
        2,
        {"free_shipping": True},
    )
    same = await _put(
        loyalty_client,
        tenant,
        "premium",
        name="Gold",
        rank=1,
        threshold=2000,
        multiplier_bps=12500,
        benefits={"free_shipping": True},
    )
    assert same.status_code == 200 and same.json()["version"] == 2
    added = await _put(loyalty_client, tenant, "black", name="Black", rank=10, threshold=50000)
    assert added.status_code == 201 and added.json()["multiplier_bps"] == 10000
    assert [t["code"] for t in await _tiers(loyalty_client, tenant)] == ["normal", "premium", "elite", "black"]


@pytest.mark.parametrize(
    ("code", "body", "problem"),
    [
        ("gold", {"name": "Gold", "rank": 1, "threshold": 3000}, "rank-taken"),
        ("premium", {"name": "Premium", "rank": 2, "threshold": 1000}, "rank-taken"),
        ("premium", {"name": "Premium", "rank": 1, "threshold": 5000}, "invalid-threshold"),
        ("premium", {"name": "Premium", "rank": 1, "threshold": 0}, "invalid-threshold"),
        ("elite", {"name": "Elite", "rank": 2, "threshold": 999}, "invalid-threshold"),
        ("normal", {"name": "Normal", "rank": 0, "threshold": 10}, "invalid-threshold"),
        ("top", {"name": "Top", "rank": 3, "threshold": 4000}, "invalid-threshold"),
        ("base", {"name": "Base", "rank": 5, "threshold": 0}, "invalid-threshold"),
        ("premium", {"name": "P", "rank": 1, "threshold": 1000, "benefits": {"x": "a\u0000b"}}, "invalid-json"),
    ],
)
async def test_the_tier_set_stays_ordered(loyalty_client, tenant, code: str, body: dict, problem: str) -> None:
    before = await _tiers(loyalty_client, tenant)
    response = await _put(loyalty_client, tenant, code, **body)
    assert (response.status_code, response.json()["type"]) == (422, problem), response.text
    assert await _tiers(loyalty_client, tenant) == before


async def test_a_tier_may_move_to_a_free_rank(loyalty_client, tenant) -> None:
    moved = await _put(loyalty_client, tenant, "elite", name="Elite", rank=7, threshold=5000)
    assert moved.status_code == 200, moved.text
    assert [(t["code"], t["rank"]) for t in await _tiers(loyalty_client, tenant)][-1] == ("elite", 7)


async def test_tiers_page_by_rank(loyalty_client, tenant) -> None:
    first = (await loyalty_client.get("/v1/tiers", params={"limit": 2}, headers=tenant.client)).json()
    assert [t["code"] for t in first["items"]] == ["normal", "premium"] and first["next_cursor"]
    rest = await loyalty_client.get(
        "/v1/tiers", params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant.client
    )
    assert [t["code"] for t in rest.json()["items"]] == ["elite"] and rest.json()["next_cursor"] is None
    bad = await loyalty_client.get("/v1/tiers", params={"cursor": "nonsense"}, headers=tenant.client)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")


async def test_only_the_admin_writes_tiers(loyalty_client, tenant) -> None:
    response = await loyalty_client.put(
        "/v1/tiers/premium", json={"name": "x", "rank": 1, "threshold": 10}, headers=tenant.client
    )
    assert response.status_code == 403
    assert (await loyalty_client.get("/v1/tiers")).status_code == 401


async def test_tiers_are_per_tenant(loyalty_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    assert (await _put(loyalty_client, tenant, "premium", name="P", rank=1, threshold=10)).status_code == 200
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"c": ["client"]})
    other = await loyalty_client.get("/v1/tiers", headers={"Authorization": f"Bearer {keys['c']}"})
    assert [t["threshold"] for t in other.json()["items"]] == [0, 1000, 5000]
