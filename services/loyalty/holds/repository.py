"""SQL of the holds: one static statement per function, the tenant in every WHERE."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = ["due_holds", "fetch_hold", "insert_hold", "lock_hold", "resolve_hold"]

_COLUMNS = """hold_id, member_id, points, captured_points, order_ref, status, expires_at, created_at, resolved_at"""

_INSERT = f"""
INSERT INTO holds (tenant_id, hold_id, member_id, points, order_ref, expires_at, hold_entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {_COLUMNS}
"""

_FETCH = f"SELECT {_COLUMNS} FROM holds WHERE tenant_id = $1 AND hold_id = $2"

_LOCK = f"SELECT {_COLUMNS} FROM holds WHERE tenant_id = $1 AND hold_id = $2 FOR UPDATE"

# Leaves `held` once: the WHERE makes a second resolution a no-op the caller sees as None.
_RESOLVE = f"""
UPDATE holds SET status = $3, captured_points = $4, resolve_entry_id = $5, resolved_at = $6
 WHERE tenant_id = $1 AND hold_id = $2 AND status = 'held'
RETURNING {_COLUMNS}
"""

# Held holds whose time has come, oldest first, locked (a capture or void racing the job waits, then
# finds the hold resolved; the job re-checks `status` after waiting, so it skips one resolved meanwhile).
_DUE = """
SELECT tenant_id, hold_id, member_id, points, order_ref, expires_at FROM holds
 WHERE status = 'held' AND expires_at <= $1 AND ($2::text IS NULL OR tenant_id = $2)
 ORDER BY expires_at, tenant_id, hold_id
 LIMIT $3
   FOR UPDATE
"""


async def insert_hold(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    hold_id: str,
    member_id: str,
    points: int,
    order_ref: str | None,
    expires_at: datetime,
    entry_id: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(_INSERT, tenant_id, hold_id, member_id, points, order_ref, expires_at, entry_id)
    assert row is not None
    return row


async def fetch_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id, hold_id)


async def lock_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str) -> asyncpg.Record | None:
    """The row, locked until the transaction ends: concurrent resolutions of one hold queue here."""
    return await conn.fetchrow(_LOCK, tenant_id, hold_id)


async def resolve_hold(
    conn: asyncpg.Connection,
    tenant_id: str,
    hold_id: str,
    status: str,
    captured_points: int,
    entry_id: int,
    resolved_at: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(_RESOLVE, tenant_id, hold_id, status, captured_points, entry_id, resolved_at)
    assert row is not None
    return row


async def due_holds(
    conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_DUE, as_of, tenant_id, limit)
