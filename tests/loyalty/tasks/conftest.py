"""Helpers for the tasks tests: tasks, completions and the member's balance through HTTP, as a shop would."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys

__all__ = ["available", "complete", "events", "progress", "put_task"]


async def put_task(client: httpx.AsyncClient, tenant: TenantKeys, code: str, **body: Any) -> dict[str, Any]:
    """PUT /v1/tasks/{code}: a daily check-in worth 5 unless `body` says otherwise."""
    body = {"name": code, "kind": "checkin", "points": 5, "period": "day"} | body
    response = await client.put(f"/v1/tasks/{code}", json=body, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def complete(
    client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, completion_id: str, task_code: str, occurred_at: str
) -> httpx.Response:
    body = {"completion_id": completion_id, "task_code": task_code, "occurred_at": occurred_at}
    return await client.post(f"/v1/members/{member_id}/task-completions", json=body, headers=tenant.client)


async def available(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> int:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return int(response.json()["balances"]["available"])


async def progress(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str) -> dict[str, dict[str, Any]]:
    """GET /v1/members/{id}/tasks, by task code."""
    response = await client.get(f"/v1/members/{member_id}/tasks", headers=tenant.client)
    assert response.status_code == 200, response.text
    return {item["code"]: item for item in response.json()["items"]}


async def events(pool: asyncpg.Pool, tenant: TenantKeys, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY seq", tenant.tenant_id, event_type
        )
    return [row["data"] for row in rows]
