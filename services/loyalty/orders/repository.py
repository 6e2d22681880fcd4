"""SQL of orders, their items, refunds and the release of pending points: one static statement per
function, tenant in every WHERE."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from services.loyalty.tiers.repository import qualifying_sum_sql
from shared.events.outbox import outbox_ctes

__all__ = [
    "apply_refund",
    "order_context",
    "place",
    "due_orders",
    "fetch_order_view",
    "lock_member_day",
    "lock_order",
    "mark_released",
    "order_items",
]

# Everything an order is decided from, in one statement: the tenant's currency and zone, the
# transaction's time (`now()`, the orders' `created_at`), the member (NULL earned_tier and no
# `member_id` when unknown), the programme, the tiers by rank, the tier of a plan running at the
# payment time $3 (the highest rank) and the earning rules in force at $3 (by code).
_CONTEXT = """
SELECT t.currency, t.timezone, now() AS now, m.member_id, m.earned_tier,
       p.config, p.version AS program_version, p.updated_at AS program_updated_at,
       (SELECT json_agg(json_build_object(
                   'code', x.code, 'name', x.name, 'rank', x.rank, 'threshold', x.threshold,
                   'multiplier_bps', x.multiplier_bps, 'benefits', x.benefits, 'version', x.version,
                   'updated_at', x.updated_at) ORDER BY x.rank)
          FROM tiers x WHERE x.tenant_id = $1) AS tiers,
       (SELECT s.tier_code
          FROM subscriptions s
          JOIN tiers st ON st.tenant_id = s.tenant_id AND st.code = s.tier_code
         WHERE s.tenant_id = $1 AND s.member_id = $2 AND s.status = 'active' AND s.tier_code IS NOT NULL
           AND s.starts_at <= $3 AND (s.ends_at IS NULL OR s.ends_at > $3)
         ORDER BY st.rank DESC, s.ends_at DESC NULLS FIRST
         LIMIT 1) AS plan_tier,
       (SELECT json_agg(json_build_object(
                   'code', r.code, 'name', r.name, 'kind', r.kind, 'condition', r.condition,
                   'multiplier_bps', r.multiplier_bps, 'points_per_unit', r.points_per_unit,
                   'cap_per_order', r.cap_per_order, 'cap_per_member_day', r.cap_per_member_day,
                   'valid_from', r.valid_from, 'valid_until', r.valid_until, 'active', r.active,
                   'version', r.version, 'updated_at', r.updated_at) ORDER BY r.code COLLATE "C")
          FROM earning_rules r
         WHERE r.tenant_id = $1 AND r.active
           AND (r.valid_from IS NULL OR r.valid_from <= $3) AND (r.valid_until IS NULL OR $3 < r.valid_until))
       AS rules
  FROM tenants t
  LEFT JOIN members m ON m.tenant_id = t.tenant_id AND m.member_id = $2
  LEFT JOIN programs p ON p.tenant_id = t.tenant_id
 WHERE t.tenant_id = $1
"""

# The order after its ledger entry, in one statement: the order, its lines, what each rule added,
# the qualifying row and the `points.earned` event with its webhook deliveries (as
# `shared.events.outbox.emit` writes them), all skipped but the order and lines for 0 points ($7).
# Then the member's standing for the immediate upgrade, read in the statement's snapshot (which does
# not see the qualifying row it inserts: the caller adds it): the earned tier, and the qualifying
# points in the window [$27, $28] ($27 NULL = no lower bound) unless the earned tier is already the
# top tier $29 (nothing to upgrade to: the sum is not read) or the order earns nothing.
_PLACE = f"""
WITH o AS (
    INSERT INTO orders (tenant_id, order_id, member_id, currency, paid_at, total_amount, points, rule_version,
                        tier_code, multiplier_bps, pending_until, earn_entry_id, released_at, release_entry_id,
                        lot_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
), i AS (
    INSERT INTO order_items (tenant_id, order_id, item_id, sku, category, amount, quantity, points, rule_codes)
    SELECT $1, $2, u.item_id, u.sku, u.category, u.amount, u.quantity, u.points,
           coalesce(string_to_array(nullif(u.rules, ''), ','), '{{}}')
      FROM unnest($16::text[], $17::text[], $18::text[], $19::bigint[], $20::int[], $21::bigint[], $22::text[])
           AS u(item_id, sku, category, amount, quantity, points, rules)
), r AS (
    INSERT INTO order_rule_points (tenant_id, order_id, rule_code, member_id, local_day, points)
    SELECT $1, $2, u.code, $3, $23, u.points FROM unnest($24::text[], $25::bigint[]) AS u(code, points)
), q AS (
    INSERT INTO qualifying_points (tenant_id, member_id, points, occurred_at, source, source_ref, entry_id)
    SELECT $1, $3, $7, $5, 'purchase', 'order:' || $2, $12 WHERE $7 <> 0
), {outbox_ctes(tenant="$1", event_type="'points.earned'", occurred_at="$5", data="$26", when="$7 <> 0")}
SELECT m.earned_tier,
       CASE WHEN $7 <> 0 AND m.earned_tier IS DISTINCT FROM $29 THEN
           {qualifying_sum_sql("$1", "$3", "$27", "$28")}
       END AS qualifying
  FROM members m
 WHERE m.tenant_id = $1 AND m.member_id = $3
"""

# Orders of one member that may hit a per-day cap serialise here (a transaction-scoped advisory lock,
# which no row lock can deadlock with).
_LOCK_MEMBER_DAY = "SELECT pg_advisory_xact_lock(hashtextextended('loyalty:earn-day:' || $1 || ':' || $2, 0))"

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


async def order_context(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, paid_at: datetime | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(_CONTEXT, tenant_id, member_id, paid_at)


async def place(
    conn: asyncpg.Connection,
    tenant_id: str,
    order: dict[str, Any],
    items: tuple[list[Any], ...],
    local_day: date,
    rule_points: tuple[list[str], list[int]],
    event: dict[str, Any],
    window: tuple[datetime | None, datetime],
    top_tier: str,
) -> asyncpg.Record:
    """Insert the order (see `_PLACE`); the member's (earned_tier, qualifying or NULL)."""
    row: asyncpg.Record = await conn.fetchrow(
        _PLACE,
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
        event,
        *window,
        top_tier,
    )
    return row


async def lock_member_day(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    await conn.execute(_LOCK_MEMBER_DAY, tenant_id, member_id)


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
