"""SQL of the tiers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "due_for_evaluation",
    "list_tier_history",
    "list_tiers",
    "lock_tiers",
    "mark_evaluated",
    "member_exists",
    "qualifying_sum_sql",
    "seed_default_tiers",
    "set_downgrade_due",
    "upsert_tier",
]

_COLUMNS = "code, name, rank, threshold, multiplier_bps, benefits, version, updated_at"


def qualifying_sum_sql(tenant: str, member: str, since: str, until: str) -> str:
    """A scalar subquery: the member's qualifying points in the window [since, until], with no lower
    bound when `since` is NULL. The arguments are SQL expressions (the caller's placeholders)."""
    return f"""(SELECT coalesce(sum(qp.points), 0)::bigint FROM qualifying_points qp
      WHERE qp.tenant_id = {tenant} AND qp.member_id = {member}
        AND ({since}::timestamptz IS NULL OR qp.occurred_at >= {since}) AND qp.occurred_at <= {until})"""


# A new tenant's tiers (§5.2); ON CONFLICT without a target: an existing code or rank is kept.
_SEED = """
INSERT INTO tiers (tenant_id, code, name, rank, threshold)
VALUES ($1, 'normal', 'Normal', 0, 0), ($1, 'premium', 'Premium', 1, 1000), ($1, 'elite', 'Elite', 2, 5000)
ON CONFLICT DO NOTHING
"""

# Tier writes of one tenant serialise here, so the whole-set rules (ranks, thresholds) hold.
_LOCK = f"SELECT {_COLUMNS} FROM tiers WHERE tenant_id = $1 ORDER BY rank FOR UPDATE"

_UPSERT = f"""
INSERT INTO tiers AS t (tenant_id, code, name, rank, threshold, multiplier_bps, benefits)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, rank = EXCLUDED.rank, threshold = EXCLUDED.threshold,
       multiplier_bps = EXCLUDED.multiplier_bps, benefits = EXCLUDED.benefits,
       version = t.version + 1, updated_at = now()
 WHERE (t.name, t.rank, t.threshold, t.multiplier_bps, t.benefits)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.rank, EXCLUDED.threshold, EXCLUDED.multiplier_bps, EXCLUDED.benefits)
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""

_LIST = f"""
SELECT {_COLUMNS} FROM tiers
 WHERE tenant_id = $1 AND rank > $2
 ORDER BY rank
 LIMIT $3
"""

# Newest first; tier_history_by_member serves the range.
_HISTORY = """
SELECT history_id, from_tier, to_tier, source, reason, occurred_at, created_at FROM tier_history
 WHERE tenant_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR history_id < $3)
 ORDER BY history_id DESC
 LIMIT $4
"""

# The tier evaluation job's next members: not yet evaluated as of $1, in (tenant, member) order. Rows
# a concurrent write holds are skipped this run; they stay due for the next.
_DUE_FOR_EVALUATION = """
SELECT tenant_id, member_id, earned_tier, downgrade_due_at FROM members
 WHERE (tier_evaluated_at IS NULL OR tier_evaluated_at < $1) AND ($2::text IS NULL OR tenant_id = $2)
 ORDER BY tenant_id, member_id
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""

_MEMBER_EXISTS = "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2)"

_SET_DOWNGRADE_DUE = """
UPDATE members SET downgrade_due_at = $3 WHERE tenant_id = $1 AND member_id = $2
"""

_MARK_EVALUATED = """
UPDATE members m SET tier_evaluated_at = $1
  FROM unnest($2::text[], $3::text[]) AS done (tenant_id, member_id)
 WHERE m.tenant_id = done.tenant_id AND m.member_id = done.member_id
"""


async def seed_default_tiers(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute(_SEED, tenant_id)


async def lock_tiers(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(_LOCK, tenant_id)


async def upsert_tier(
    conn: asyncpg.Connection,
    tenant_id: str,
    code: str,
    name: str,
    rank: int,
    threshold: int,
    multiplier_bps: int,
    benefits: dict[str, Any],
) -> asyncpg.Record | None:
    """The tier when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(_UPSERT, tenant_id, code, name, rank, threshold, multiplier_bps, benefits)


async def list_tiers(conn: asyncpg.Connection, tenant_id: str, after_rank: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, tenant_id, after_rank, limit)


async def list_tier_history(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_HISTORY, tenant_id, member_id, before, limit)


async def due_for_evaluation(
    conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_DUE_FOR_EVALUATION, as_of, tenant_id, limit)


async def set_downgrade_due(conn: asyncpg.Connection, tenant_id: str, member_id: str, due: datetime | None) -> None:
    await conn.execute(_SET_DOWNGRADE_DUE, tenant_id, member_id, due)


async def mark_evaluated(
    conn: asyncpg.Connection, as_of: datetime, tenant_ids: list[str], member_ids: list[str]
) -> None:
    await conn.execute(_MARK_EVALUATED, as_of, tenant_ids, member_ids)


async def member_exists(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(_MEMBER_EXISTS, tenant_id, member_id))
