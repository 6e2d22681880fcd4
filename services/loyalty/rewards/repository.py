"""SQL of the rewards and redemptions: one static statement per function, the tenant in every WHERE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "cancel_redemption",
    "fetch_redemption",
    "fetch_reward",
    "insert_redemption",
    "list_member_redemptions",
    "list_rewards",
    "lock_member_reward",
    "lock_redemption",
    "redeemed_quantity",
    "return_stock",
    "take_stock",
    "upsert_reward",
]

_REWARD_COLUMNS = """code, name, cost_points, kind, stock, per_member_limit, valid_from, valid_until, min_tier,
       payload, active, version, updated_at"""

# An unchanged reward keeps its version; `created` tells 201 from 200. Stock is set absolutely.
_UPSERT = f"""
INSERT INTO rewards AS r (tenant_id, code, name, cost_points, kind, stock, per_member_limit, valid_from,
                          valid_until, min_tier, payload, active)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, cost_points = EXCLUDED.cost_points, kind = EXCLUDED.kind, stock = EXCLUDED.stock,
       per_member_limit = EXCLUDED.per_member_limit, valid_from = EXCLUDED.valid_from,
       valid_until = EXCLUDED.valid_until, min_tier = EXCLUDED.min_tier, payload = EXCLUDED.payload,
       active = EXCLUDED.active, version = r.version + 1, updated_at = now()
 WHERE (r.name, r.cost_points, r.kind, r.stock, r.per_member_limit, r.valid_from, r.valid_until, r.min_tier,
        r.payload, r.active)
       IS DISTINCT FROM
       (EXCLUDED.name, EXCLUDED.cost_points, EXCLUDED.kind, EXCLUDED.stock, EXCLUDED.per_member_limit,
        EXCLUDED.valid_from, EXCLUDED.valid_until, EXCLUDED.min_tier, EXCLUDED.payload, EXCLUDED.active)
RETURNING {_REWARD_COLUMNS}, (xmax = 0) AS created
"""

_FETCH_REWARD = f"SELECT {_REWARD_COLUMNS} FROM rewards WHERE tenant_id = $1 AND code = $2"

_LIST_REWARDS = f"""
SELECT {_REWARD_COLUMNS} FROM rewards
 WHERE tenant_id = $1 AND code > $2
 ORDER BY code
 LIMIT $3
"""

# The stock CHECK (stock >= 0) backs this; NULL stock is unlimited and stays NULL.
_TAKE_STOCK = """
UPDATE rewards SET stock = stock - $3
 WHERE tenant_id = $1 AND code = $2 AND (stock IS NULL OR stock >= $3)
RETURNING stock
"""

_RETURN_STOCK = """
UPDATE rewards SET stock = stock + $3 WHERE tenant_id = $1 AND code = $2 AND stock IS NOT NULL
"""

# A member's redemptions of one reward queue here (per-member limit); other members are not blocked.
_LOCK_MEMBER_REWARD = (
    "SELECT pg_advisory_xact_lock(hashtextextended('loyalty:redeem:' || $1 || ':' || $2 || ':' || $3, 0))"
)

_REDEEMED_QUANTITY = """
SELECT coalesce(sum(quantity), 0)::bigint FROM redemptions
 WHERE tenant_id = $1 AND member_id = $2 AND reward_code = $3 AND status = 'completed'
"""

_REDEMPTION_COLUMNS = "redemption_id, member_id, reward_code, quantity, points, status, created_at, cancelled_at"

_INSERT_REDEMPTION = f"""
INSERT INTO redemptions (tenant_id, redemption_id, member_id, reward_code, quantity, points, entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {_REDEMPTION_COLUMNS}
"""

_FETCH_REDEMPTION = f"SELECT {_REDEMPTION_COLUMNS} FROM redemptions WHERE tenant_id = $1 AND redemption_id = $2"

_LOCK_REDEMPTION = f"""
SELECT {_REDEMPTION_COLUMNS} FROM redemptions WHERE tenant_id = $1 AND redemption_id = $2 FOR UPDATE
"""

_CANCEL = f"""
UPDATE redemptions SET status = 'cancelled', cancelled_at = now(), cancel_entry_id = $3
 WHERE tenant_id = $1 AND redemption_id = $2 AND status = 'completed'
RETURNING {_REDEMPTION_COLUMNS}
"""

# Newest first; (created_at, redemption_id) is the keyset.
_LIST_MEMBER = f"""
SELECT {_REDEMPTION_COLUMNS} FROM redemptions
 WHERE tenant_id = $1 AND member_id = $2
   AND ($3::timestamptz IS NULL OR (created_at, redemption_id) < ($3::timestamptz, $4::text))
 ORDER BY created_at DESC, redemption_id DESC
 LIMIT $5
"""


async def upsert_reward(
    conn: asyncpg.Connection, tenant_id: str, code: str, values: dict[str, Any]
) -> asyncpg.Record | None:
    """The reward when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(
        _UPSERT,
        tenant_id,
        code,
        values["name"],
        values["cost_points"],
        values["kind"],
        values["stock"],
        values["per_member_limit"],
        values["valid_from"],
        values["valid_until"],
        values["min_tier"],
        values["payload"],
        values["active"],
    )


async def fetch_reward(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_REWARD, tenant_id, code)


async def list_rewards(conn: asyncpg.Connection, tenant_id: str, after_code: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST_REWARDS, tenant_id, after_code, limit)


async def take_stock(conn: asyncpg.Connection, tenant_id: str, code: str, quantity: int) -> bool:
    """Decrement the stock by `quantity` if that many are left (always, when unlimited)."""
    row = await conn.fetchrow(_TAKE_STOCK, tenant_id, code, quantity)
    return row is not None


async def return_stock(conn: asyncpg.Connection, tenant_id: str, code: str, quantity: int) -> None:
    await conn.execute(_RETURN_STOCK, tenant_id, code, quantity)


async def lock_member_reward(conn: asyncpg.Connection, tenant_id: str, member_id: str, reward_code: str) -> None:
    await conn.execute(_LOCK_MEMBER_REWARD, tenant_id, member_id, reward_code)


async def redeemed_quantity(conn: asyncpg.Connection, tenant_id: str, member_id: str, reward_code: str) -> int:
    return int(await conn.fetchval(_REDEEMED_QUANTITY, tenant_id, member_id, reward_code))


async def insert_redemption(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    redemption_id: str,
    member_id: str,
    reward_code: str,
    quantity: int,
    points: int,
    entry_id: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        _INSERT_REDEMPTION, tenant_id, redemption_id, member_id, reward_code, quantity, points, entry_id
    )
    assert row is not None
    return row


async def fetch_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_REDEMPTION, tenant_id, redemption_id)


async def lock_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str) -> asyncpg.Record | None:
    """The row, locked until the transaction ends: concurrent cancellations of one redemption queue here."""
    return await conn.fetchrow(_LOCK_REDEMPTION, tenant_id, redemption_id)


async def cancel_redemption(
    conn: asyncpg.Connection, tenant_id: str, redemption_id: str, entry_id: int
) -> asyncpg.Record:
    row = await conn.fetchrow(_CANCEL, tenant_id, redemption_id, entry_id)
    assert row is not None
    return row


async def list_member_redemptions(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    created_at, redemption_id = before if before is not None else (None, None)
    return await conn.fetch(_LIST_MEMBER, tenant_id, member_id, created_at, redemption_id, limit)
