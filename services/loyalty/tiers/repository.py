"""SQL of the tiers."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["list_tiers", "lock_tiers", "seed_default_tiers", "upsert_tier"]

_COLUMNS = "code, name, rank, threshold, multiplier_bps, benefits, version, updated_at"

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
