"""A tenant with a few accounts, directly on the loyalty schema's ledger."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.ledger import Leg, open_account, post_entry

PROGRAM = "program:points_issued"


class LedgerTenant:
    def __init__(self, pool: asyncpg.Pool, tenant_id: str) -> None:
        self.pool = pool
        self.tenant_id = tenant_id

    async def member(self, name: str, asset: str = "PTS") -> str:
        code = f"member:{name}:points"
        async with self.pool.acquire() as conn:
            await open_account(conn, self.tenant_id, code, asset, owner_id=name)
        return code

    async def earn(self, code: str, amount: int, key: str | None = None) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            posted = await post_entry(
                conn,
                self.tenant_id,
                kind="earn",
                idempotency_key=key or uuid.uuid4().hex,
                legs=[Leg(PROGRAM, amount), Leg(code, -amount)],
            )
        return posted.entry_id


@pytest.fixture
async def ledger(loyalty_pool: asyncpg.Pool) -> LedgerTenant:
    tenant_id = "L" + uuid.uuid4().hex[:12]
    async with loyalty_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant_id)
        await open_account(conn, tenant_id, PROGRAM, "PTS", normal_side="debit", no_overdraft=False, tracked=False)
        await open_account(
            conn, tenant_id, "program:cash", "CNY", normal_side="debit", no_overdraft=False, tracked=False
        )
    return LedgerTenant(loyalty_pool, tenant_id)
