"""A write through the kernel's HTTP stack: the request owns the transaction, the business id makes
it idempotent, a refusal is an atomic problem+json. The route exists only in this test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.app import create_service_app
from shared.auth import Principal
from shared.http import outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.ledger import Leg, balances, open_account, post_entry
from tests.conftest import TenantKeys, serve, settings_for

PROGRAM = "program:points_issued"


class Move(msgspec.Struct, kw_only=True):
    move_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    member_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    points: Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]


@post("/v1/test/moves", responses=problem_responses(401, 409))
async def move_points(
    request: Request[Principal, Any, Any], data: JSONBody[Move], db: NamedDependency[asyncpg.Connection]
) -> Response[bytes]:
    tenant_id = request.user.tenant_id
    member = f"member:{data.member_id}:points"

    async def run() -> tuple[int, dict[str, int]]:
        await open_account(db, tenant_id, PROGRAM, "PTS", normal_side="debit", no_overdraft=False, tracked=False)
        await open_account(db, tenant_id, member, "PTS", owner_id=data.member_id)
        legs = [Leg(PROGRAM, data.points), Leg(member, -data.points)]
        posted = await post_entry(db, tenant_id, kind="move", idempotency_key=f"move:{data.move_id}", legs=legs)
        balance = (await balances(db, tenant_id, [member]))[member].balance
        return 201, {"entry_id": posted.entry_id, "balance": balance}

    outcome = await run_idempotent(
        db, tenant_id=tenant_id, scope="moves", key=data.move_id, body=data, run=run, instance=request.url.path
    )
    return outcome_response(outcome)


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        settings_for("loyalty", database_url), title="t", description="t", route_handlers=[move_points]
    )
    async with serve(app) as http:
        yield http


async def _balance(loyalty_pool: asyncpg.Pool, tenant: TenantKeys, member: str) -> int | None:
    async with loyalty_pool.acquire() as conn:
        found = await balances(conn, tenant.tenant_id, [f"member:{member}:points"])
    return found[f"member:{member}:points"].balance if found else None


async def test_retry_replays_byte_for_byte(client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool) -> None:
    body = {"move_id": "m-1", "member_id": "ann", "points": 40}
    first = await client.post("/v1/test/moves", json=body, headers=tenant.client)
    retry = await client.post("/v1/test/moves", json=body, headers=tenant.client)
    assert first.status_code == 201 and first.json()["balance"] == 40
    assert (retry.status_code, retry.content) == (201, first.content)
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await _balance(loyalty_pool, tenant, "ann") == 40


async def test_same_id_other_body_is_409_and_writes_nothing(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool
) -> None:
    await client.post("/v1/test/moves", json={"move_id": "m-1", "member_id": "bo", "points": 40}, headers=tenant.client)
    other = await client.post(
        "/v1/test/moves", json={"move_id": "m-1", "member_id": "bo", "points": 41}, headers=tenant.client
    )
    assert other.status_code == 409 and other.json()["type"] == "idempotency-conflict"
    assert other.headers["content-type"] == "application/problem+json"
    assert await _balance(loyalty_pool, tenant, "bo") == 40


async def test_refusal_is_atomic_and_stays_refused(client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool) -> None:
    spend = {"move_id": "m-2", "member_id": "cy", "points": -50}
    refused = await client.post("/v1/test/moves", json=spend, headers=tenant.client)
    # Nothing of the refused write remains: not even the member's account it opened.
    assert await _balance(loyalty_pool, tenant, "cy") is None
    await client.post("/v1/test/moves", json={"move_id": "m-3", "member_id": "cy", "points": 80}, headers=tenant.client)
    again = await client.post("/v1/test/moves", json=spend, headers=tenant.client)
    assert refused.status_code == 409 and refused.json()["type"] == "insufficient-balance"
    assert (again.status_code, again.content) == (409, refused.content)
    assert await _balance(loyalty_pool, tenant, "cy") == 80


async def test_concurrent_retries_apply_once(client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool) -> None:
    body = {"move_id": "m-4", "member_id": "di", "points": 7}
    responses = await asyncio.gather(
        *(client.post("/v1/test/moves", json=body, headers=tenant.client) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    assert await _balance(loyalty_pool, tenant, "di") == 7


async def test_tenants_do_not_share_business_ids(client: httpx.AsyncClient, tenant: TenantKeys, database_url: str):
    from ops.cli import provision
    from shared.tenants import TenantIn

    other_keys = await provision(database_url, tenant.tenant_id + "o", TenantIn(name="o"), {"c": ["client"]})
    body = {"move_id": "m-5", "member_id": "ed", "points": 5}
    mine = await client.post("/v1/test/moves", json=body, headers=tenant.client)
    theirs = await client.post("/v1/test/moves", json=body, headers={"Authorization": f"Bearer {other_keys['c']}"})
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["entry_id"] != theirs.json()["entry_id"]
