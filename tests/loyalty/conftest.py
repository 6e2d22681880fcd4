"""Helpers for the loyalty service's tests: everything through HTTP, as a shop's backend would, except
where no endpoint exists yet (lots, earning): those go through the service's own functions on a
connection of the loyalty schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from services.loyalty import accounts
from services.loyalty.lots import credit_lot
from shared.ledger import Leg, post_entry
from tests.conftest import TenantKeys

__all__ = ["assert_ledger_ok", "configure", "earn", "put_member", "qualify"]


async def earn(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    points: int,
    earned_at: datetime,
    expires: datetime | None,
    *,
    kind: str = "earn",
) -> int:
    """Issue `points` straight to available with their lot, as the (not yet built) earning code will:
    one entry program:points_issued -> member:{id}:points and one lot. The lot's id."""
    entry = await post_entry(
        conn,
        tenant_id,
        kind=kind,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        legs=[Leg(accounts.ISSUED, points), Leg(accounts.points(member_id), -points)],
        effective_at=earned_at,
        reason="test",
        source_ref=f"order:{uuid.uuid4().hex[:8]}",
    )
    return await credit_lot(conn, tenant_id, member_id, points, earned_at, expires, entry.entry_id)


async def qualify(conn: asyncpg.Connection, tenant_id: str, member_id: str, points: int, occurred_at: datetime) -> None:
    """A qualifying-points row, as earning will write it (no endpoint yet)."""
    await conn.execute(
        "INSERT INTO qualifying_points (tenant_id, member_id, points, occurred_at, source, source_ref)"
        " VALUES ($1, $2, $3, $4, 'purchase', 'test')",
        tenant_id,
        member_id,
        points,
        occurred_at,
    )


async def configure(client: httpx.AsyncClient, tenant: TenantKeys, **config: Any) -> dict[str, Any]:
    """PUT /v1/program with the defaults overridden by `config`."""
    response = await client.put("/v1/program", json=config, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def put_member(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    member_id: str,
    *,
    joined_at: str = "2026-01-01T00:00:00+08:00",
    **extra: Any,
) -> dict[str, Any]:
    response = await client.put(
        f"/v1/members/{member_id}", json={"joined_at": joined_at, **extra}, headers=tenant.client
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def assert_ledger_ok(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    """§4.3 in full (kernel checks and the lot invariant) for this tenant."""
    response = await client.get("/v1/ledger/verify", headers=tenant.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"], report["violations"]
    assert "5a-available-equals-live-lots" in report["checks"], report["checks"]
