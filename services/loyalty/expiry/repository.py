"""SQL of the expiry sweep and the expiry reminders."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = ["due_lots", "due_reminders", "earlier_expiry_takes", "record_reminders"]

# Live lots whose expiry has come, oldest first (index lots_expiring). SKIP LOCKED: a lot a redemption
# or hold is using right now is left for the next run instead of making the sweep wait on it.
_DUE_LOTS = """
SELECT tenant_id, lot_id, member_id, expires_at
  FROM lots
 WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1 AND ($2::text IS NULL OR tenant_id = $2)
 ORDER BY expires_at, tenant_id, lot_id
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""

# How often each lot was expired before (read after the lots are locked, so no other take can race it).
_EARLIER_TAKES = """
SELECT u.tenant_id, u.lot_id, count(a.allocation_id)::int AS takes
  FROM unnest($1::text[], $2::bigint[]) AS u(tenant_id, lot_id)
  LEFT JOIN lot_allocations a ON a.tenant_id = u.tenant_id AND a.lot_id = u.lot_id AND a.purpose = 'expiry'
 GROUP BY u.tenant_id, u.lot_id
"""

# Live lots expiring in (as_of, as_of + the tenant's reminder days], days counted on the tenant's local
# calendar, that were never reminded; tenants with 0 reminder days are left out. $4 is the default days
# for a tenant that never configured its programme.
_DUE_REMINDERS = """
WITH windows AS (
    SELECT t.tenant_id, t.timezone,
           coalesce((p.config ->> 'expiry_reminder_days')::int, $4::int) AS days
      FROM tenants t
      LEFT JOIN programs p ON p.tenant_id = t.tenant_id
     WHERE $2::text IS NULL OR t.tenant_id = $2
)
SELECT l.tenant_id, l.lot_id, l.member_id, l.remaining, l.expires_at,
       ((l.expires_at - interval '1 microsecond') AT TIME ZONE w.timezone)::date AS last_day
  FROM windows w
  JOIN lots l ON l.tenant_id = w.tenant_id
 WHERE w.days > 0 AND l.remaining > 0 AND l.expires_at > $1
   AND l.expires_at <= (($1 AT TIME ZONE w.timezone) + make_interval(days => w.days)) AT TIME ZONE w.timezone
   AND NOT EXISTS (SELECT 1 FROM expiry_reminders r WHERE r.tenant_id = l.tenant_id AND r.lot_id = l.lot_id)
 ORDER BY l.expires_at, l.tenant_id, l.lot_id
 LIMIT $3
"""

# The primary key (tenant, lot) decides: a lot is reminded once ever, whoever inserts first.
_RECORD_REMINDERS = """
INSERT INTO expiry_reminders (tenant_id, lot_id, member_id, expires_at, points)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bigint[])
ON CONFLICT (tenant_id, lot_id) DO NOTHING
RETURNING tenant_id, lot_id
"""


async def due_lots(
    conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_DUE_LOTS, as_of, tenant_id, limit)


async def earlier_expiry_takes(conn: asyncpg.Connection, lots: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    rows = await conn.fetch(_EARLIER_TAKES, [t for t, _ in lots], [lot for _, lot in lots])
    return {(r["tenant_id"], r["lot_id"]): r["takes"] for r in rows}


async def due_reminders(
    conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int, default_days: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_DUE_REMINDERS, as_of, tenant_id, limit, default_days)


async def record_reminders(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> set[tuple[str, int]]:
    """Insert a reminder row per lot; the (tenant, lot) pairs this call inserted (not those already there)."""
    inserted = await conn.fetch(
        _RECORD_REMINDERS,
        [r["tenant_id"] for r in rows],
        [r["lot_id"] for r in rows],
        [r["member_id"] for r in rows],
        [r["expires_at"] for r in rows],
        [r["remaining"] for r in rows],
    )
    return {(r["tenant_id"], r["lot_id"]) for r in inserted}
