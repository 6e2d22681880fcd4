"""What every service serves: health, readiness, metrics, request ids and problem+json (§3.2, §3.7)."""

from __future__ import annotations

import re

import asyncpg
import httpx

from services.loyalty.app import create_app as create_loyalty_app
from shared.errors import PROBLEM_MEDIA_TYPE
from tests.conftest import OPERATOR, TenantKeys, serve, settings_for


async def test_livez_needs_no_database_nor_credentials(loyalty_client: httpx.AsyncClient) -> None:
    response = await loyalty_client.get("/livez")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_is_503_when_the_database_is_gone(fresh_database, admin_dsn: str) -> None:
    url = fresh_database()
    app = create_loyalty_app(settings_for("loyalty", url))
    async with serve(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        name = url.split("?")[0].rsplit("/", 1)[1]
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        response = await client.get("/readyz")
        assert (await client.get("/livez")).status_code == 200
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"] == "unavailable"


async def test_request_id_is_echoed_or_generated(loyalty_client: httpx.AsyncClient) -> None:
    echoed = await loyalty_client.get("/livez", headers={"X-Request-ID": "abc-123"})
    generated = await loyalty_client.get("/livez", headers={"X-Request-ID": "bad id with spaces"})
    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template_and_pool(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await loyalty_client.get(f"/v1/tenants/{tenant.tenant_id}", headers=OPERATOR)
    text = (await loyalty_client.get("/metrics")).text
    assert 'path="/v1/tenants/{tenant_id}"' in text
    assert tenant.tenant_id not in text  # ids never become label values
    assert 'db_pool_connections{service="loyalty"}' in text


async def test_malformed_json_is_a_400_problem(loyalty_client: httpx.AsyncClient) -> None:
    response = await loyalty_client.put(
        "/v1/tenants/x1", content=b'{"name": ', headers={**OPERATOR, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"] == "invalid-request"


async def test_wrong_types_and_huge_strings_are_400(loyalty_client: httpx.AsyncClient) -> None:
    wrong = await loyalty_client.put("/v1/tenants/x1", json={"name": 5}, headers=OPERATOR)
    huge = await loyalty_client.put("/v1/tenants/x1", json={"name": "x" * 300_000}, headers=OPERATOR)
    too_big = await loyalty_client.put("/v1/tenants/x1", content=b"x" * 2_000_000, headers=OPERATOR)
    assert (wrong.status_code, huge.status_code) == (400, 400)
    assert too_big.status_code == 413 and too_big.json()["type"] == "payload-too-large"


async def test_unknown_route_and_method_are_problems(loyalty_client: httpx.AsyncClient) -> None:
    missing = await loyalty_client.get("/v1/nothing-here")
    method = await loyalty_client.delete("/livez")
    assert missing.status_code == 404 and missing.json()["type"] == "not-found"
    assert method.status_code == 405 and method.json()["type"] == "method-not-allowed"
    assert "GET" in method.headers["allow"]


async def test_operator_endpoints_are_off_without_a_token(database_url: str) -> None:
    app = create_loyalty_app(settings_for("loyalty", database_url, operator_token=None))
    async with serve(app) as client:
        response = await client.put("/v1/tenants/x2", json={"name": "x"}, headers=OPERATOR)
    assert response.status_code == 404


async def test_verify_endpoint_reports_a_tampered_balance(
    loyalty_client: httpx.AsyncClient, loyalty_pool: asyncpg.Pool, tenant: TenantKeys
) -> None:
    from shared.ledger import Leg, open_account, post_entry

    async with loyalty_pool.acquire() as conn:
        await open_account(
            conn,
            tenant.tenant_id,
            "program:points_issued",
            "PTS",
            normal_side="debit",
            no_overdraft=False,
            tracked=False,
        )
        await open_account(conn, tenant.tenant_id, "member:m:points", "PTS", owner_id="m")
        async with conn.transaction():
            await post_entry(
                conn,
                tenant.tenant_id,
                kind="earn",
                idempotency_key="e1",
                legs=[Leg("program:points_issued", 9), Leg("member:m:points", -9)],
            )
        clean = (await loyalty_client.get("/v1/ledger/verify", headers=tenant.admin)).json()
        # Only a superuser switching triggers off can do this; verify is what still notices.
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE accounts SET credits_posted = 1000 WHERE tenant_id = $1 AND code = 'member:m:points'",
                tenant.tenant_id,
            )
    report = (await loyalty_client.get("/v1/ledger/verify", headers=tenant.admin)).json()
    assert clean["ok"] is True
    assert report["ok"] is False
    assert {v["invariant"] for v in report["violations"]} == {"3-counters-equal-postings"}
    assert report["violations"][0]["subject"] == "account member:m:points"


async def test_readyz_is_503_when_the_pool_has_no_free_connection(database_url: str) -> None:
    app = create_loyalty_app(settings_for("loyalty", database_url, pool_min_size=1, pool_max_size=1))
    async with serve(app) as client:
        held = await app.state.pool.acquire()
        try:
            busy = await client.get("/readyz")
        finally:
            await app.state.pool.release(held)
        free = await client.get("/readyz")
    assert busy.status_code == 503 and busy.json()["type"] == "unavailable"
    assert free.status_code == 200


def _requests_total(metrics: str, path: str, status: int, method: str = "GET") -> float:
    """The loyalty app's `http_requests_total` of `method` `path` answered with `status` (0 when none yet)."""
    wanted = {"app_name": "loyalty", "method": method, "path": path, "status_code": str(status)}
    for line in metrics.splitlines():
        if line.startswith("http_requests_total{"):
            labels, value = line[len("http_requests_total{") :].rsplit("} ", 1)
            if dict(re.findall(r'(\w+)="([^"]*)"', labels)) == wanted:
                return float(value)
    return 0.0


async def test_an_auth_refusal_carries_its_request_id_and_is_counted_as_a_401(
    loyalty_client: httpx.AsyncClient,
) -> None:
    path = "/v1/members/{member_id}"
    before = _requests_total((await loyalty_client.get("/metrics")).text, path, 401)
    refused = await loyalty_client.get(
        "/v1/members/m-1", headers={"Authorization": "Bearer ak_unknown", "X-Request-ID": "refused-1"}
    )
    assert refused.status_code == 401 and refused.json()["type"] == "unauthorized"
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert refused.headers["x-request-id"] == "refused-1"
    assert _requests_total((await loyalty_client.get("/metrics")).text, path, 401) == before + 1


async def test_requests_the_router_refuses_are_counted_without_their_path(loyalty_client: httpx.AsyncClient) -> None:
    before = (await loyalty_client.get("/metrics")).text
    missing = await loyalty_client.get("/v1/nothing-here/m-secret", headers={"X-Request-ID": "lost-1"})
    method = await loyalty_client.delete("/livez")
    invented = await loyalty_client.request("BREW", "/livez")
    after = (await loyalty_client.get("/metrics")).text
    assert (missing.status_code, method.status_code, invented.status_code) == (404, 405, 405)
    assert missing.headers["x-request-id"] == "lost-1" and len(method.headers["x-request-id"]) == 32
    assert _requests_total(after, "(unrouted)", 405, "OTHER") == _requests_total(before, "(unrouted)", 405, "OTHER") + 1
    assert "BREW" not in after
    assert 'http_request_duration_seconds_count{app_name="loyalty",method="GET",path="(unrouted)"' not in after
    assert _requests_total(after, "(unrouted)", 404) == _requests_total(before, "(unrouted)", 404) + 1
    assert (
        _requests_total(after, "(unrouted)", 405, "DELETE") == _requests_total(before, "(unrouted)", 405, "DELETE") + 1
    )
    assert "m-secret" not in after  # the refused path never becomes a label value
