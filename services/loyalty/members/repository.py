"""SQL of the members and their views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "active_plan_tier",
    "expiring_points",
    "fetch_member",
    "qualifying_points",
    "tenant_timezone",
    "upsert_member",
]

_COLUMNS = "member_id, attributes, joined_at, earned_tier, tier_since, version, created_at, updated_at"

# An unchanged member keeps its version; `created` tells 201 from 200.
_UPSERT = f"""
INSERT INTO members AS m (tenant_id, member_id, attributes, joined_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, member_id) DO UPDATE
   SET attributes = EXCLUDED.attributes, joined_at = EXCLUDED.joined_at,
       version = m.version + 1, updated_at = now()
 WHERE (m.attributes, m.joined_at) IS DISTINCT FROM (EXCLUDED.attributes, EXCLUDED.joined_at)
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""

_FETCH = f"SELECT {_COLUMNS} FROM members WHERE tenant_id = $1 AND member_id = $2"

_TIMEZONE = "SELECT timezone FROM tenants WHERE tenant_id = $1"

# The highest tier granted by a plan running at $3.
_PLAN_TIER = """
SELECT s.subscription_id, s.plan_code, s.tier_code, s.ends_at
  FROM subscriptions s
  JOIN tiers t ON t.tenant_id = s.tenant_id AND t.code = s.tier_code
 WHERE s.tenant_id = $1 AND s.member_id = $2 AND s.status = 'active' AND s.tier_code IS NOT NULL
   AND s.starts_at <= $3 AND (s.ends_at IS NULL OR s.ends_at > $3)
 ORDER BY t.rank DESC, s.ends_at DESC NULLS FIRST
 LIMIT 1
"""

# Live lots expiring before $3 (those already due and not yet swept included), by expiry time.
_EXPIRING = """
SELECT l.expires_at, ((l.expires_at - interval '1 microsecond') AT TIME ZONE $4)::date AS last_day,
       sum(l.remaining)::bigint AS points
  FROM lots l
 WHERE l.tenant_id = $1 AND l.member_id = $2 AND l.remaining > 0 AND l.expires_at <= $3
 GROUP BY l.expires_at
 ORDER BY l.expires_at
"""

_QUALIFYING = """
SELECT coalesce(sum(points), 0)::bigint FROM qualifying_points
 WHERE tenant_id = $1 AND member_id = $2 AND ($3::timestamptz IS NULL OR occurred_at >= $3) AND occurred_at <= $4
"""


async def upsert_member(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, attributes: dict[str, Any], joined_at: datetime
) -> asyncpg.Record | None:
    """The member when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(_UPSERT, tenant_id, member_id, attributes, joined_at)


async def fetch_member(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id, member_id)


async def tenant_timezone(conn: asyncpg.Connection, tenant_id: str) -> str:
    return str(await conn.fetchval(_TIMEZONE, tenant_id))


async def active_plan_tier(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, as_of: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(_PLAN_TIER, tenant_id, member_id, as_of)


async def expiring_points(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, until: datetime, timezone: str
) -> list[asyncpg.Record]:
    return await conn.fetch(_EXPIRING, tenant_id, member_id, until, timezone)


async def qualifying_points(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, since: datetime | None, as_of: datetime
) -> int:
    return int(await conn.fetchval(_QUALIFYING, tenant_id, member_id, since, as_of))
