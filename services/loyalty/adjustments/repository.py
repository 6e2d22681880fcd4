"""SQL of the adjustments."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = ["insert_adjustment", "list_adjustments"]

_COLUMNS = "adjustment_id, member_id, points, reason, qualifying, operator, entry_id, created_at"

_INSERT = f"""
INSERT INTO adjustments (tenant_id, adjustment_id, member_id, points, reason, operator, qualifying, entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {_COLUMNS}
"""

# Newest first; the cursor is the last row's (created_at, adjustment_id).
_LIST = f"""
SELECT {_COLUMNS} FROM adjustments
 WHERE tenant_id = $1 AND member_id = $2
   AND ($3::timestamptz IS NULL OR (created_at, adjustment_id) < ($3, $4::text))
 ORDER BY created_at DESC, adjustment_id DESC
 LIMIT $5
"""


async def insert_adjustment(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    adjustment_id: str,
    member_id: str,
    points: int,
    reason: str,
    operator: str,
    qualifying: bool,
    entry_id: int,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        _INSERT, tenant_id, adjustment_id, member_id, points, reason, operator, qualifying, entry_id
    )
    return row


async def list_adjustments(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    since, last_id = before if before is not None else (None, None)
    return await conn.fetch(_LIST, tenant_id, member_id, since, last_id, limit)
