"""A tenant with keys on both services and a small chart of accounts on the loyalty ledger.

Activity goes through the kernel's `post_entry` on a pool connection, as a service would post it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import httpx
import pytest

from shared.ledger import Leg, open_account, post_entry
from tests.conftest import TenantKeys

ISSUED = "program:points_issued"
CASH = "program:cash"


class Books:
    def __init__(self, pool: asyncpg.Pool, client: httpx.AsyncClient, tenant: TenantKeys) -> None:
        self.pool = pool
        self.client = client
        self.tenant = tenant
        self.tenant_id = tenant.tenant_id

    async def member(self, name: str, asset: str = "PTS") -> str:
        code = f"member:{name}:points" if asset == "PTS" else f"member:{name}:cash"
        async with self.pool.acquire() as conn:
            await open_account(conn, self.tenant_id, code, asset, owner_id=name)
        return code

    async def post(
        self,
        legs: list[tuple[str, int]],
        *,
        kind: str = "earn",
        effective_at: datetime | None = None,
        reason: str | None = None,
        source_ref: str | None = None,
    ) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            posted = await post_entry(
                conn,
                self.tenant_id,
                kind=kind,
                idempotency_key=uuid.uuid4().hex,
                legs=[Leg(code, amount) for code, amount in legs],
                effective_at=effective_at,
                reason=reason,
                source_ref=source_ref,
            )
        return posted.entry_id

    async def earn(self, code: str, amount: int, **kwargs: object) -> int:
        return await self.post([(ISSUED, amount), (code, -amount)], **kwargs)  # type: ignore[arg-type]

    async def now(self) -> datetime:
        """The database's clock: entries are stamped by it, so windows are cut by it too."""
        async with self.pool.acquire() as conn:
            value: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return value

    async def get(self, path: str, **params: object) -> httpx.Response:
        query = {
            k.rstrip("_"): v.isoformat() if isinstance(v, datetime) else v for k, v in params.items() if v is not None
        }
        return await self.client.get(path, params=query, headers=self.tenant.admin)


@pytest.fixture
async def books(loyalty_pool: asyncpg.Pool, loyalty_client: httpx.AsyncClient, tenant: TenantKeys) -> Books:
    async with loyalty_pool.acquire() as conn:
        await open_account(
            conn, tenant.tenant_id, ISSUED, "PTS", normal_side="debit", no_overdraft=False, tracked=False
        )
        await open_account(conn, tenant.tenant_id, CASH, "CNY", normal_side="debit", no_overdraft=False, tracked=False)
    return Books(loyalty_pool, loyalty_client, tenant)
