"""Helpers for the referral service's tests: everything goes through HTTP, as a shop's backend would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from shared.db import create_pool
from tests.conftest import TenantKeys, settings_for

__all__ = ["assert_ledger_ok", "configure", "register"]


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Direct reads of the referral schema (the outbox, the ledger) where no endpoint shows them."""
    db = await create_pool(settings_for("referral", database_url), min_size=1, max_size=4)
    yield db
    await db.close()


async def configure(client: httpx.AsyncClient, tenant: TenantKeys, **config: Any) -> dict[str, Any]:
    """PUT /v1/program with the defaults overridden by `config`."""
    response = await client.put("/v1/program", json=config, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def register(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    member_id: str,
    *,
    registered_at: str = "2026-01-01T00:00:00+08:00",
    invite_code: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"registered_at": registered_at, **extra}
    if invite_code is not None:
        body["invite_code"] = invite_code
    response = await client.put(f"/v1/members/{member_id}", json=body, headers=tenant.client)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def assert_ledger_ok(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    """§4.3 in full (kernel checks and the commission invariant) for this tenant."""
    response = await client.get("/v1/ledger/verify", headers=tenant.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"], report["violations"]
