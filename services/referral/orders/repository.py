"""SQL of orders, refunds and commission items: one static statement per function, tenant in every WHERE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.events.outbox import outbox_ctes

__all__ = [
    "apply_refund",
    "due_commissions",
    "fetch_order_view",
    "insert_order",
    "lock_commissions",
    "lock_member_accounts",
    "lock_order",
    "mark_released",
    "order_snapshot",
    "order_items",
    "record_receipt",
    "tenant_money_settings",
]

_TENANT = "SELECT currency, timezone FROM tenants WHERE tenant_id = $1"

# Everything an order is priced on, in one round trip: the tenant's currency and zone, the programme
# row (none: the defaults), and the buyer (depth 0) with their ancestors up to the legal maximum of
# three levels (the caller keeps the programme's depth), each with distributor status, level and the
# level's rates. No chain (NULL) means no such buyer; no row at all means no such tenant.
_SNAPSHOT = """
SELECT t.currency, t.timezone, pr.config, pr.version, pr.updated_at,
       (SELECT json_agg(c ORDER BY c.depth)
          FROM (SELECT 0 AS depth, m.member_id, m.distributor_status, m.distributor_level, dl.rates_bps
                  FROM members m
                  LEFT JOIN distributor_levels dl ON dl.tenant_id = m.tenant_id AND dl.code = m.distributor_level
                 WHERE m.tenant_id = $1 AND m.member_id = $2
                UNION ALL
                SELECT p.depth, m.member_id, m.distributor_status, m.distributor_level, dl.rates_bps
                  FROM referral_paths p
                  JOIN members m ON m.tenant_id = p.tenant_id AND m.member_id = p.ancestor_id
                  LEFT JOIN distributor_levels dl ON dl.tenant_id = m.tenant_id AND dl.code = m.distributor_level
                 WHERE p.tenant_id = $1 AND p.member_id = $2 AND p.depth <= 3) c) AS chain
  FROM tenants t
  LEFT JOIN programs pr ON pr.tenant_id = t.tenant_id
 WHERE t.tenant_id = $1
"""

# The order after its ledger entry, in one statement (foreign keys are checked at its end): the buyer's
# team statistics (§6.6: paid orders and net paid amount; the row is locked here, after the accounts,
# and held only until the commit), the order with the freeze days it was paid under ($22), its lines,
# its commission rows and, when it accrued
# anything ($9, the entry), `commission.accrued` with its webhook deliveries (as
# `shared.events.outbox.emit` writes them).
_INSERT_ORDER = f"""
WITH b AS (
    UPDATE members SET order_count = order_count + 1, paid_amount = paid_amount + $6
     WHERE tenant_id = $1 AND member_id = $3
), o AS (
    INSERT INTO orders (tenant_id, order_id, buyer_id, currency, paid_at, total_amount, chain, rule_version,
                        accrue_entry_id, freeze_days)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $22)
    RETURNING created_at
), i AS (
    INSERT INTO order_items (tenant_id, order_id, item_id, category, amount, quantity)
    SELECT $1, $2, u.item_id, u.category, u.amount, u.quantity
      FROM unnest($10::text[], $11::text[], $12::bigint[], $13::int[]) AS u(item_id, category, amount, quantity)
), c AS (
    INSERT INTO commission_items (tenant_id, order_id, item_id, level, beneficiary_id, rate_bps, base_amount,
                                  amount, release_at)
    SELECT $1, $2, u.item_id, u.level, u.beneficiary_id, u.rate_bps, u.base_amount, u.amount, $14
      FROM unnest($15::text[], $16::smallint[], $17::text[], $18::int[], $19::bigint[], $20::bigint[])
           AS u(item_id, level, beneficiary_id, rate_bps, base_amount, amount)
), {outbox_ctes(tenant="$1", event_type="'commission.accrued'", occurred_at="$5", data="$21", when="$9 IS NOT NULL")}
SELECT created_at FROM o
"""

_LOCK_ORDER = """
SELECT order_id, buyer_id, currency, paid_at, received_at, total_amount, refunded_amount, freeze_days
  FROM orders WHERE tenant_id = $1 AND order_id = $2
   FOR UPDATE
"""

_ORDER_ITEMS = """
SELECT item_id, category, amount, refunded_amount FROM order_items WHERE tenant_id = $1 AND order_id = $2
"""

_LOCK_COMMISSIONS = """
SELECT item_id, level, beneficiary_id, amount, reversed_amount, written_off, state
  FROM commission_items WHERE tenant_id = $1 AND order_id = $2
 ORDER BY item_id, level
   FOR UPDATE
"""

# Receipt: recorded on the order; commission waiting for it (release_at NULL) gets its release time.
_RECORD_RECEIPT = """
WITH o AS (
    UPDATE orders SET received_at = $3 WHERE tenant_id = $1 AND order_id = $2
), c AS (
    UPDATE commission_items SET release_at = $4
     WHERE tenant_id = $1 AND order_id = $2 AND state = 'frozen' AND release_at IS NULL
    RETURNING 1
)
SELECT count(*) FROM c
"""

# Locks the members' commission accounts in the kernel's global order (tenant, account id) before their
# balances are read, so a clawback or repayment computed from them cannot race, and cannot deadlock
# with the posting trigger, which takes the same locks in the same order.
_LOCK_MEMBER_ACCOUNTS = """
SELECT a.tenant_id, a.code, a.debits_posted, a.credits_posted
  FROM accounts a
 WHERE (a.tenant_id, a.code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
 ORDER BY a.tenant_id, a.account_id
   FOR NO KEY UPDATE
"""

# The refund after its ledger entry, in one statement; the buyer's statistics ($13) come last here too.
_APPLY_REFUND = """
WITH b AS (
    UPDATE members SET paid_amount = paid_amount - $4 WHERE tenant_id = $1 AND member_id = $13
), r AS (
    INSERT INTO refunds (tenant_id, refund_id, order_id, amount, items, entry_id)
    VALUES ($1, $3, $2, $4, $5, $6)
    RETURNING created_at
), o AS (
    UPDATE orders SET refunded_amount = refunded_amount + $4 WHERE tenant_id = $1 AND order_id = $2
), i AS (
    UPDATE order_items oi SET refunded_amount = oi.refunded_amount + u.amount
      FROM unnest($7::text[], $8::bigint[]) AS u(item_id, amount)
     WHERE oi.tenant_id = $1 AND oi.order_id = $2 AND oi.item_id = u.item_id
), c AS (
    UPDATE commission_items ci
       SET reversed_amount = ci.reversed_amount + u.reversed,
           written_off = ci.written_off + u.written_off,
           state = CASE WHEN ci.reversed_amount + u.reversed = ci.amount THEN 'reversed' ELSE ci.state END
      FROM unnest($9::text[], $10::smallint[], $11::bigint[], $12::bigint[]) AS u(item_id, level, reversed, written_off)
     WHERE ci.tenant_id = $1 AND ci.order_id = $2 AND ci.item_id = u.item_id AND ci.level = u.level
)
SELECT created_at FROM r
"""

# Due frozen commission, oldest first; rows another run holds are skipped, not waited for.
_DUE = """
SELECT tenant_id, order_id, item_id, level, beneficiary_id, amount, reversed_amount, release_at
  FROM commission_items
 WHERE state = 'frozen' AND release_at <= $1 AND ($2::text IS NULL OR tenant_id = $2)
 ORDER BY release_at
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""

_MARK_RELEASED = """
UPDATE commission_items ci
   SET state = CASE WHEN u.entry_id IS NULL THEN 'reversed' ELSE 'released' END,
       released_at = CASE WHEN u.entry_id IS NULL THEN NULL ELSE $1::timestamptz END,
       release_entry_id = u.entry_id
  FROM unnest($2::text[], $3::text[], $4::text[], $5::smallint[], $6::bigint[])
       AS u(tenant_id, order_id, item_id, level, entry_id)
 WHERE ci.tenant_id = u.tenant_id AND ci.order_id = u.order_id AND ci.item_id = u.item_id AND ci.level = u.level
"""

# The whole order view in one statement, so it is one consistent snapshot.
_ORDER_VIEW = """
SELECT o.order_id, o.buyer_id, o.currency, o.paid_at, o.received_at, o.total_amount, o.refunded_amount,
       o.rule_version, o.chain,
       coalesce((SELECT json_agg(json_build_object(
                            'item_id', i.item_id, 'category', i.category, 'amount', i.amount,
                            'quantity', i.quantity, 'refunded_amount', i.refunded_amount,
                            'commissions', coalesce((
                                SELECT json_agg(json_build_object(
                                           'level', c.level, 'member_id', c.beneficiary_id, 'rate_bps', c.rate_bps,
                                           'base_amount', c.base_amount, 'amount', c.amount,
                                           'reversed_amount', c.reversed_amount, 'written_off', c.written_off,
                                           'state', c.state, 'release_at', c.release_at,
                                           'released_at', c.released_at) ORDER BY c.level)
                                  FROM commission_items c
                                 WHERE c.tenant_id = i.tenant_id AND c.order_id = i.order_id
                                   AND c.item_id = i.item_id), '[]'::json))
                        ORDER BY i.item_id COLLATE "C")
                   FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.order_id),
                '[]'::json) AS items,
       coalesce((SELECT json_agg(json_build_object('refund_id', r.refund_id, 'amount', r.amount, 'items', r.items,
                                                   'created_at', r.created_at)
                                 ORDER BY r.created_at, r.refund_id COLLATE "C")
                   FROM refunds r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.order_id),
                '[]'::json) AS refunds
  FROM orders o
 WHERE o.tenant_id = $1 AND o.order_id = $2
"""


async def tenant_money_settings(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_TENANT, tenant_id)


async def order_snapshot(conn: asyncpg.Connection, tenant_id: str, buyer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_SNAPSHOT, tenant_id, buyer_id)


async def insert_order(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    order_id: str,
    buyer_id: str,
    currency: str,
    paid_at: datetime,
    total_amount: int,
    chain: list[dict[str, Any]],
    rule_version: int,
    accrue_entry_id: int | None,
    items: tuple[list[str], list[str | None], list[int], list[int]],
    commissions: tuple[list[str], list[int], list[str], list[int], list[int], list[int]],
    release_at: datetime | None,
    event: dict[str, Any] | None,
    freeze_days: int,
) -> datetime:
    """Insert the order (see `_INSERT_ORDER`); `event`: the data of `commission.accrued`."""
    created_at: datetime = await conn.fetchval(
        _INSERT_ORDER,
        tenant_id,
        order_id,
        buyer_id,
        currency,
        paid_at,
        total_amount,
        chain,
        rule_version,
        accrue_entry_id,
        *items,
        release_at,
        *commissions,
        event,
        freeze_days,
    )
    return created_at


async def lock_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_LOCK_ORDER, tenant_id, order_id)


async def order_items(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> list[Any]:
    return await conn.fetch(_ORDER_ITEMS, tenant_id, order_id)


async def lock_commissions(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> list[Any]:
    return await conn.fetch(_LOCK_COMMISSIONS, tenant_id, order_id)


async def record_receipt(
    conn: asyncpg.Connection, tenant_id: str, order_id: str, received_at: datetime, release_at: datetime
) -> int:
    """Returns how many commission rows got their release time."""
    scheduled: int = await conn.fetchval(_RECORD_RECEIPT, tenant_id, order_id, received_at, release_at)
    return scheduled


async def lock_member_accounts(conn: asyncpg.Connection, tenant_ids: list[str], codes: list[str]) -> list[Any]:
    return await conn.fetch(_LOCK_MEMBER_ACCOUNTS, tenant_ids, codes)


async def apply_refund(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    order_id: str,
    buyer_id: str,
    refund_id: str,
    amount: int,
    items: list[dict[str, Any]],
    entry_id: int | None,
    item_refunds: tuple[list[str], list[int]],
    reversals: tuple[list[str], list[int], list[int], list[int]],
) -> datetime:
    created_at: datetime = await conn.fetchval(
        _APPLY_REFUND, tenant_id, order_id, refund_id, amount, items, entry_id, *item_refunds, *reversals, buyer_id
    )
    return created_at


async def due_commissions(conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int) -> list[Any]:
    return await conn.fetch(_DUE, as_of, tenant_id, limit)


async def mark_released(
    conn: asyncpg.Connection,
    released_at: datetime,
    rows: tuple[list[str], list[str], list[str], list[int], list[int | None]],
) -> None:
    await conn.execute(_MARK_RELEASED, released_at, *rows)


async def fetch_order_view(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ORDER_VIEW, tenant_id, order_id)
