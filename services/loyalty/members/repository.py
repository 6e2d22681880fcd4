"""SQL of the members and their views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.loyalty.tiers.repository import qualifying_sum_sql

__all__ = [
    "active_plan_tier",
    "member_view",
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

# The member view's rows in one statement (one snapshot): the member, the tenant's zone, the programme
# config, the tiers by rank, the plan tier running at $3, the balances of the four accounts $4 (member
# accounts are tracked: their counters are the balance, on the normal side) and the live lots expiring
# before $5 by expiry time (as arrays: timestamps keep asyncpg's UTC datetimes).
_VIEW = f"""
SELECT m.member_id, m.attributes, m.joined_at, m.earned_tier, m.tier_since, m.version, m.created_at,
       m.updated_at, t.timezone, p.config,
       (SELECT json_agg(json_build_object(
                   'code', x.code, 'name', x.name, 'rank', x.rank, 'threshold', x.threshold,
                   'multiplier_bps', x.multiplier_bps, 'benefits', x.benefits, 'version', x.version,
                   'updated_at', x.updated_at) ORDER BY x.rank)
          FROM tiers x WHERE x.tenant_id = $1) AS tiers,
       plan.subscription_id AS plan_subscription_id, plan.plan_code, plan.tier_code AS plan_tier_code,
       plan.ends_at AS plan_ends_at,
       (SELECT array_agg(CASE WHEN a.normal_side = 'credit' THEN a.credits_posted - a.debits_posted
                              ELSE a.debits_posted - a.credits_posted END ORDER BY k.n)
          FROM unnest($4::text[]) WITH ORDINALITY AS k(code, n)
          LEFT JOIN accounts a ON a.tenant_id = $1 AND a.code = k.code) AS balances,
       e.expires_at AS expiring_at, e.last_day AS expiring_last_day, e.points AS expiring_points
  FROM members m
  JOIN tenants t ON t.tenant_id = m.tenant_id
  LEFT JOIN programs p ON p.tenant_id = m.tenant_id
  LEFT JOIN LATERAL ({_PLAN_TIER}) plan ON true
  LEFT JOIN LATERAL (
      SELECT array_agg(g.expires_at ORDER BY g.expires_at) AS expires_at,
             array_agg(g.last_day ORDER BY g.expires_at) AS last_day,
             array_agg(g.points ORDER BY g.expires_at) AS points
        FROM (SELECT l.expires_at, ((l.expires_at - interval '1 microsecond') AT TIME ZONE t.timezone)::date AS last_day,
                     sum(l.remaining)::bigint AS points
                FROM lots l
               WHERE l.tenant_id = $1 AND l.member_id = $2 AND l.remaining > 0 AND l.expires_at <= $5
               GROUP BY l.expires_at) g
  ) e ON true
 WHERE m.tenant_id = $1 AND m.member_id = $2
"""

_QUALIFYING = f"SELECT {qualifying_sum_sql('$1', '$2', '$3', '$4')}"


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


async def member_view(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, as_of: datetime, codes: list[str], until: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(_VIEW, tenant_id, member_id, as_of, codes, until)


async def qualifying_points(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, since: datetime | None, as_of: datetime
) -> int:
    return int(await conn.fetchval(_QUALIFYING, tenant_id, member_id, since, as_of))
