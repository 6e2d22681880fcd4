"""SQL of the withdrawals: one static statement per function, the tenant in every WHERE."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = [
    "fetch_withdrawal",
    "insert_withdrawal",
    "list_member_withdrawals",
    "lock_withdrawal",
    "member_exists",
    "set_status",
]

_COLUMNS = """withdrawal_id, member_id, amount, fee, currency, channel, account_ref, status, reason, payout_ref,
       requested_at, approved_at, resolved_at, updated_at"""

_MEMBER_EXISTS = "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2)"

_INSERT = f"""
INSERT INTO withdrawals (tenant_id, withdrawal_id, member_id, amount, fee, currency, channel, account_ref,
                         status, approved_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 = 'approved' THEN now() END)
RETURNING {_COLUMNS}
"""

_FETCH = f"SELECT {_COLUMNS} FROM withdrawals WHERE tenant_id = $1 AND withdrawal_id = $2"

_LOCK = f"SELECT {_COLUMNS} FROM withdrawals WHERE tenant_id = $1 AND withdrawal_id = $2 FOR UPDATE"

# The status machine's moves only: which moves are legal is the service's decision, under the row lock.
_SET_STATUS = f"""
UPDATE withdrawals
   SET status = $3,
       reason = coalesce($4, reason),
       payout_ref = coalesce($5, payout_ref),
       approved_at = CASE WHEN $3 = 'approved' THEN now() ELSE approved_at END,
       resolved_at = CASE WHEN $3 IN ('completed', 'rejected', 'failed') THEN now() ELSE resolved_at END,
       updated_at = now()
 WHERE tenant_id = $1 AND withdrawal_id = $2
RETURNING {_COLUMNS}
"""

# Newest first; (requested_at, withdrawal_id) is the keyset, withdrawals_by_member serves the range.
_LIST = f"""
SELECT {_COLUMNS} FROM withdrawals
 WHERE tenant_id = $1 AND member_id = $2
   AND ($3::text IS NULL OR status = $3)
   AND ($4::timestamptz IS NULL OR (requested_at, withdrawal_id) < ($4::timestamptz, $5::text))
 ORDER BY requested_at DESC, withdrawal_id DESC
 LIMIT $6
"""


async def member_exists(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(_MEMBER_EXISTS, tenant_id, member_id))


async def insert_withdrawal(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    withdrawal_id: str,
    member_id: str,
    amount: int,
    fee: int,
    currency: str,
    channel: str,
    account_ref: str,
    status: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        _INSERT, tenant_id, withdrawal_id, member_id, amount, fee, currency, channel, account_ref, status
    )
    assert row is not None
    return row


async def fetch_withdrawal(conn: asyncpg.Connection, tenant_id: str, withdrawal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id, withdrawal_id)


async def lock_withdrawal(conn: asyncpg.Connection, tenant_id: str, withdrawal_id: str) -> asyncpg.Record | None:
    """The row, locked until the transaction ends: concurrent transitions of one withdrawal queue here."""
    return await conn.fetchrow(_LOCK, tenant_id, withdrawal_id)


async def set_status(
    conn: asyncpg.Connection,
    tenant_id: str,
    withdrawal_id: str,
    status: str,
    *,
    reason: str | None = None,
    payout_ref: str | None = None,
) -> asyncpg.Record:
    row = await conn.fetchrow(_SET_STATUS, tenant_id, withdrawal_id, status, reason, payout_ref)
    assert row is not None
    return row


async def list_member_withdrawals(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    *,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    requested_at, withdrawal_id = before if before is not None else (None, None)
    return await conn.fetch(_LIST, tenant_id, member_id, status, requested_at, withdrawal_id, limit)
