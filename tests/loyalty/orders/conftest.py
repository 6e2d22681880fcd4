"""Helpers for the orders tests: orders, refunds and the release job through HTTP, as a shop would;
spending through the lot core where the test needs points gone (no dependency on the rewards flow)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo
from shared.ledger import Leg, post_entry
from tests.conftest import TenantKeys

__all__ = [
    "LIFETIME",
    "PAID_AT",
    "RELEASE_AT",
    "balances",
    "entries",
    "events",
    "order_body",
    "place",
    "refund",
    "run_release",
    "spend",
]

PAID_AT = "2026-03-01T10:00:00+08:00"
RELEASE_AT = "2026-03-08T02:00:00Z"  # PAID_AT + 7 days (the default), in UTC
# Tests that read qualifying points count all of them, so fixed payment dates never leave the window.
LIFETIME = {"kind": "lifetime"}


def order_body(order_id: str, member_id: str, *items: tuple[str, int] | dict[str, Any], **extra: Any) -> dict[str, Any]:
    lines = [
        item if isinstance(item, dict) else {"item_id": item[0], "amount": item[1], "quantity": 1} for item in items
    ]
    return {"order_id": order_id, "member_id": member_id, "currency": "CNY", "items": lines, "paid_at": PAID_AT} | extra


async def place(client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/orders", json=body, headers=tenant.client)
    assert response.status_code == 201, response.text
    return response.json()


async def refund(
    client: httpx.AsyncClient, tenant: TenantKeys, order_id: str, refund_id: str, *items: tuple[str, int]
) -> httpx.Response:
    body = {"refund_id": refund_id, "items": [{"item_id": i, "amount": a} for i, a in items]}
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body, headers=tenant.client)


async def run_release(client: httpx.AsyncClient, tenant: TenantKeys, as_of: str, **options: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/jobs/release-pending-points", json={"as_of": as_of, **options}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def balances(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, int]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()["balances"]
    return result


async def spend(pool: asyncpg.Pool, tenant: TenantKeys, member_id: str, points: int) -> None:
    """Spend available points as a redemption would: FEFO allocation and `points + / redeemed −`."""
    ref = uuid.uuid4().hex
    async with pool.acquire() as conn, conn.transaction():
        await allocate_fefo(conn, tenant.tenant_id, member_id, points, "redemption", ref)
        await post_entry(
            conn,
            tenant.tenant_id,
            kind="test.redeem",
            idempotency_key=f"test:redeem:{ref}",
            legs=[Leg(accounts.points(member_id), points), Leg(accounts.REDEEMED, -points)],
        )


async def events(pool: asyncpg.Pool, tenant: TenantKeys, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY seq",
            tenant.tenant_id,
            event_type,
        )
    return [row["data"] for row in rows]


async def entries(pool: asyncpg.Pool, tenant: TenantKeys, kind: str) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT idempotency_key FROM entries WHERE tenant_id = $1 AND kind = $2 ORDER BY entry_id",
            tenant.tenant_id,
            kind,
        )
    return [row["idempotency_key"] for row in rows]
