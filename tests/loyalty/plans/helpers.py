"""Helpers of the plan and tier tests: plans, purchases, jobs over HTTP; events and spending on the
loyalty schema (no redemption endpoint is needed to spend)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo
from shared.ledger import Leg, post_entry
from tests.conftest import TenantKeys

__all__ = ["buy", "events", "history", "member", "put_plan", "run_job", "spend", "when"]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def put_plan(client: httpx.AsyncClient, tenant: TenantKeys, code: str, **body: Any) -> dict[str, Any]:
    plan = {"name": code.title(), "duration": "P1M", "price": 990, **body}
    response = await client.put(f"/v1/plans/{code}", json=plan, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def buy(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    member_id: str,
    subscription_id: str,
    plan_code: str,
    paid_at: datetime | str,
    paid_amount: int = 990,
) -> httpx.Response:
    body = {
        "subscription_id": subscription_id,
        "plan_code": plan_code,
        "paid_amount": paid_amount,
        "paid_at": paid_at if isinstance(paid_at, str) else paid_at.isoformat(),
    }
    return await client.post(f"/v1/members/{member_id}/subscriptions", json=body, headers=tenant.client)


async def member(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


async def history(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/members/{member_id}/tier-history", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def run_job(
    client: httpx.AsyncClient, tenant: TenantKeys, name: str, as_of: datetime, **options: Any
) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/{name}", json={"as_of": as_of.isoformat(), **options}, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def events(pool: asyncpg.Pool, tenant: TenantKeys, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY seq", tenant.tenant_id, event_type
        )
    return [row["data"] for row in rows]


async def spend(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int) -> None:
    """A redemption as the rewards code posts it: FEFO allocation, then points + / redeemed −."""
    ref = f"test-{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn, conn.transaction():
        await allocate_fefo(conn, tenant.tenant_id, member_id, points, "redemption", ref)
        await post_entry(
            conn,
            tenant.tenant_id,
            kind="test.redeem",
            idempotency_key=f"test:{ref}",
            legs=[Leg(accounts.points(member_id), points), Leg(accounts.REDEEMED, -points)],
            reason="test",
            source_ref=ref,
        )
