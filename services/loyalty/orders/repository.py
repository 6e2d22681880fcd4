"""SQL of orders, their items, refunds and the release of pending points: one static statement per
function, tenant in every WHERE."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

__all__ = [
    "apply_refund",
    "due_orders",
    "fetch_order_view",
    "insert_order",
    "lock_member_day",
    "lock_order",
    "mark_released",
    "order_items",
    "tenant_settings",
]

_TENANT = "SELECT currency, timezone FROM tenants WHERE tenant_id = $1"

# Orders of one member that may hit a per-day cap serialise here (a transaction-scoped advisory lock,
# which no row lock can deadlock with).
_LOCK_MEMBER_DAY = "SELECT pg_advisory_xact_lock(hashtextextended('loyalty:earn-day:' || $1 || ':' || $2, 0))"

# The order, its lines and what each rule added, in one statement. A line's rule codes come joined by
# ',' (codes are plain identifiers), since unnest cannot carry ragged arrays.
_INSERT_ORDER = """
WITH o AS (
    INSERT INTO orders (tenant_id, order_id, member_id, currency, paid_at, total_amount, points, rule_version,
                        tier_code, multiplier_bps, pending_until, earn_entry_id, released_at, release_entry_id,
                        lot_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    RETURNING created_at
), i AS (
    INSERT INTO order_items (tenant_id, order_id, item_id, sku, category, amount, quantity, points, rule_codes)
    SELECT $1, $2, u.item_id, u.sku, u.category, u.amount, u.quantity, u.points,
           coalesce(string_to_array(nullif(u.rules, ''), ','), '{}')
      FROM unnest($16::text[], $17::text[], $18::text[], $19::bigint[], $20::int[], $21::bigint[], $22::text[])
           AS u(item_id, sku, category, amount, quantity, points, rules)
), r AS (
    INSERT INTO order_rule_points (tenant_id, order_id, rule_code, member_id, local_day, points)
    SELECT $1, $2, u.code, $3, $23, u.points FROM unnest($24::text[], $25::bigint[]) AS u(code, points)
)
SELECT created_at FROM o
"""

_LOCK_ORDER = """
SELECT order_id, member_id, currency, paid_at, total_amount, refunded_amount, points, reversed_points,
       pending_until, released_at
  FROM orders WHERE tenant_id = $1 AND order_id = $2
   FOR UPDATE
"""

_ORDER_ITEMS = """
SELECT item_id, amount, refunded_amount, points, reversed_points FROM order_items
 WHERE tenant_id = $1 AND order_id = $2
"""

_APPLY_REFUND = """
WITH r AS (
    INSERT INTO refunds (tenant_id, refund_id, order_id, amount, points_reversed, debt_points, written_off, items,
                         entry_id)
    VALUES ($1, $3, $2, $4, $5, $6, $7, $8, $9)
    RETURNING created_at
), o AS (
    UPDATE orders SET refunded_amount = refunded_amount + $4, reversed_points = reversed_points + $5
     WHERE tenant_id = $1 AND order_id = $2
), i AS (
    UPDATE order_items oi
       SET refunded_amount = oi.refunded_amount + u.amount, reversed_points = oi.reversed_points + u.points
      FROM unnest($10::text[], $11::bigint[], $12::bigint[]) AS u(item_id, amount, points)
     WHERE oi.tenant_id = $1 AND oi.order_id = $2 AND oi.item_id = u.item_id
)
SELECT created_at FROM r
"""

# Due pending orders, oldest first; orders a refund or another run holds are skipped, not waited for.
_DUE = """
SELECT tenant_id, order_id, member_id, paid_at, points, reversed_points, pending_until, lot_expires_at
  FROM orders
 WHERE released_at IS NULL AND pending_until <= $1 AND ($2::text IS NULL OR tenant_id = $2)
 ORDER BY pending_until, tenant_id, order_id
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""

_MARK_RELEASED = """
UPDATE orders o SET released_at = $1, release_entry_id = u.entry_id
  FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(tenant_id, order_id, entry_id)
 WHERE o.tenant_id = u.tenant_id AND o.order_id = u.order_id
"""

# The whole order view in one statement, so it is one consistent snapshot.
_ORDER_VIEW = """
SELECT o.order_id, o.member_id, o.currency, o.paid_at, o.total_amount, o.refunded_amount, o.points,
       o.reversed_points, o.pending_until, o.released_at, o.lot_expires_at, o.rule_version, o.tier_code,
       o.multiplier_bps, o.created_at,
       CASE WHEN o.released_at IS NULL THEN 'pending' ELSE 'released' END AS state,
       coalesce((SELECT json_agg(json_build_object(
                            'item_id', i.item_id, 'sku', i.sku, 'category', i.category, 'amount', i.amount,
                            'quantity', i.quantity, 'points', i.points, 'refunded_amount', i.refunded_amount,
                            'reversed_points', i.reversed_points, 'rule_codes', i.rule_codes)
                        ORDER BY i.item_id COLLATE "C")
                   FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.order_id),
                '[]'::json) AS items,
       coalesce((SELECT json_agg(json_build_object(
                            'refund_id', r.refund_id, 'amount', r.amount, 'points_reversed', r.points_reversed,
                            'debt_points', r.debt_points, 'written_off', r.written_off, 'items', r.items,
                            'created_at', r.created_at)
                        ORDER BY r.created_at, r.refund_id COLLATE "C")
                   FROM refunds r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.order_id),
                '[]'::json) AS refunds
  FROM orders o
 WHERE o.tenant_id = $1 AND o.order_id = $2
"""


async def tenant_settings(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_TENANT, tenant_id)


async def lock_member_day(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    await conn.execute(_LOCK_MEMBER_DAY, tenant_id, member_id)


async def insert_order(
    conn: asyncpg.Connection,
    tenant_id: str,
    order: dict[str, Any],
    items: tuple[list[Any], ...],
    local_day: date,
    rule_points: tuple[list[str], list[int]],
) -> datetime:
    created_at: datetime = await conn.fetchval(
        _INSERT_ORDER,
        tenant_id,
        order["order_id"],
        order["member_id"],
        order["currency"],
        order["paid_at"],
        order["total_amount"],
        order["points"],
        order["rule_version"],
        order["tier_code"],
        order["multiplier_bps"],
        order["pending_until"],
        order["earn_entry_id"],
        order["released_at"],
        order["release_entry_id"],
        order["lot_expires_at"],
        *items,
        local_day,
        *rule_points,
    )
    return created_at


async def lock_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_LOCK_ORDER, tenant_id, order_id)


async def order_items(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(_ORDER_ITEMS, tenant_id, order_id)


async def apply_refund(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    order_id: str,
    refund_id: str,
    amount: int,
    points: int,
    debt_points: int,
    written_off: int,
    items: list[dict[str, Any]],
    entry_id: int | None,
) -> datetime:
    created_at: datetime = await conn.fetchval(
        _APPLY_REFUND,
        tenant_id,
        order_id,
        refund_id,
        amount,
        points,
        debt_points,
        written_off,
        items,
        entry_id,
        [item["item_id"] for item in items],
        [item["amount"] for item in items],
        [item["points_reversed"] for item in items],
    )
    return created_at


async def due_orders(conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int) -> list[Any]:
    return await conn.fetch(_DUE, as_of, tenant_id, limit)


async def mark_released(
    conn: asyncpg.Connection, released_at: datetime, rows: tuple[list[str], list[str], list[int | None]]
) -> None:
    await conn.execute(_MARK_RELEASED, released_at, *rows)


async def fetch_order_view(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ORDER_VIEW, tenant_id, order_id)
