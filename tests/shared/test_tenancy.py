"""Tenants, keys, scopes and isolation (§3.1), through HTTP on both services."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import OPERATOR, TenantKeys


@pytest.fixture(params=["loyalty", "referral"])
def client(request: pytest.FixtureRequest) -> httpx.AsyncClient:
    return request.getfixturevalue(f"{request.param}_client")


async def test_operator_creates_tenant_then_updates_it(client: httpx.AsyncClient) -> None:
    body = {"name": "Tea House", "timezone": "Asia/Shanghai", "currency": "CNY"}
    created = await client.put("/v1/tenants/tea-house-" + client.base_url.host, json=body, headers=OPERATOR)
    again = await client.put("/v1/tenants/tea-house-" + client.base_url.host, json=body, headers=OPERATOR)
    renamed = await client.put(
        "/v1/tenants/tea-house-" + client.base_url.host, json={**body, "name": "Tea House 2"}, headers=OPERATOR
    )
    assert created.status_code in (200, 201)
    assert again.status_code == 200 and again.json()["name"] == "Tea House"
    assert renamed.status_code == 200 and renamed.json()["name"] == "Tea House 2"


async def test_new_tenant_is_201_with_defaults(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    tenant_id = tenant.tenant_id + "x"
    response = await client.put(f"/v1/tenants/{tenant_id}", json={"name": "Shop"}, headers=OPERATOR)
    assert response.status_code == 201
    assert response.json()["timezone"] == "Asia/Shanghai" and response.json()["currency"] == "CNY"


async def test_unknown_timezone_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/tenants/tz-shop", json={"name": "S", "timezone": "Mars/Olympus"}, headers=OPERATOR)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "invalid-timezone"


async def test_operator_endpoints_refuse_tenant_keys_and_bad_tokens(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    for headers in (tenant.admin, {}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await client.put(f"/v1/tenants/{tenant.tenant_id}", json={"name": "X"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["type"] == "unauthorized"


async def test_issued_key_is_shown_once_and_works(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    url = f"/v1/tenants/{tenant.tenant_id}/api-keys"
    body = {"key_id": "pos-terminal", "scopes": ["client"], "label": "shop POS"}
    first = await client.post(url, json=body, headers=OPERATOR)
    replay = await client.post(url, json=body, headers=OPERATOR)
    conflict = await client.post(url, json={**body, "scopes": ["admin"]}, headers=OPERATOR)
    assert first.status_code == 201 and first.json()["key"].startswith("ak_")
    assert replay.status_code == 200 and replay.json()["key"] is None
    assert replay.json()["scopes"] == ["client"]
    assert conflict.status_code == 409 and conflict.json()["type"] == "idempotency-conflict"
    key = {"Authorization": f"Bearer {first.json()['key']}"}
    assert (await client.get("/v1/ledger/verify", headers=key)).status_code == 403


async def test_key_for_unknown_tenant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tenants/no-such-tenant/api-keys", json={"key_id": "k", "scopes": ["admin"]}, headers=OPERATOR
    )
    assert response.status_code == 404 and response.json()["type"] == "tenant-not-found"


async def test_scopes_401_403(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    assert (await client.get("/v1/ledger/verify")).status_code == 401
    assert (await client.get("/v1/ledger/verify", headers={"Authorization": "Bearer ak_wrong"})).status_code == 401
    forbidden = await client.get("/v1/ledger/verify", headers=tenant.client)
    assert forbidden.status_code == 403 and forbidden.json()["type"] == "forbidden"
    ok = await client.get("/v1/ledger/verify", headers=tenant.admin)
    assert ok.status_code == 200 and ok.json()["ok"] is True


async def test_tenant_key_reads_nothing_of_another_tenant(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    # Tenant keys never reach the operator's tenant resources, their own or another's.
    other = await client.get(f"/v1/tenants/{tenant.tenant_id}", headers=tenant.admin)
    assert other.status_code == 401
    assert (await client.get(f"/v1/tenants/{tenant.tenant_id}", headers=OPERATOR)).json()[
        "tenant_id"
    ] == tenant.tenant_id


async def test_ledger_reads_are_scoped_to_the_key_tenant(
    loyalty_client: httpx.AsyncClient, loyalty_pool, tenant: TenantKeys, database_url: str
) -> None:
    """A violation planted in tenant B shows in B's report only; A's key never sees B's rows."""
    from ops.cli import provision
    from shared.tenants import TenantIn

    other_id = tenant.tenant_id + "b"
    other_keys = await provision(database_url, other_id, TenantIn(name="B"), {"admin": ["admin"]})
    other = {"Authorization": f"Bearer {other_keys['admin']}"}
    async with loyalty_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO accounts (tenant_id, code, asset) VALUES ($1, 'member:x:points', 'PTS')", other_id
        )
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE accounts SET credits_posted = 7 WHERE tenant_id = $1", other_id)
    mine = (await loyalty_client.get("/v1/ledger/verify", headers=tenant.admin)).json()
    theirs = (await loyalty_client.get("/v1/ledger/verify", headers=other)).json()
    assert mine["ok"] is True and mine["violations"] == []
    assert theirs["ok"] is False
    assert {v["tenant_id"] for v in theirs["violations"]} == {other_id}
