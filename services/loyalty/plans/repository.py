"""SQL of the plans, the subscriptions and plan-driven tier history: one static statement per function."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = [
    "due_subscriptions",
    "fetch_plan",
    "fetch_subscription",
    "has_trial",
    "insert_plan_history",
    "insert_subscription",
    "list_member_subscriptions",
    "list_plans",
    "lock_member_subscriptions",
    "lock_subscription",
    "mark_cancelled",
    "mark_expired",
    "set_bonus_entry",
    "stack_end",
    "tenant_zone_and_currency",
    "upsert_plan",
]

_PLAN_COLUMNS = (
    "code, name, duration, price, tier_code, bonus_points, grants_distribution, trial, active, version, "
    "created_at, updated_at"
)

_SUB_COLUMNS = """subscription_id, member_id, plan_code, tier_code, duration, trial, bonus_points, status, paid_amount,
       currency, paid_at, starts_at, ends_at, cancelled_at, refunded, created_at"""

# An unchanged plan keeps its version; `created` tells 201 from 200.
_UPSERT_PLAN = f"""
INSERT INTO plans AS p (tenant_id, code, name, duration, price, tier_code, bonus_points, grants_distribution,
                        trial, active)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, duration = EXCLUDED.duration, price = EXCLUDED.price,
       tier_code = EXCLUDED.tier_code, bonus_points = EXCLUDED.bonus_points,
       grants_distribution = EXCLUDED.grants_distribution, trial = EXCLUDED.trial, active = EXCLUDED.active,
       version = p.version + 1, updated_at = now()
 WHERE (p.name, p.duration, p.price, p.tier_code, p.bonus_points, p.grants_distribution, p.trial, p.active)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.duration, EXCLUDED.price, EXCLUDED.tier_code,
                         EXCLUDED.bonus_points, EXCLUDED.grants_distribution, EXCLUDED.trial, EXCLUDED.active)
RETURNING {_PLAN_COLUMNS}, (xmax = 0) AS created
"""

_FETCH_PLAN = f"SELECT {_PLAN_COLUMNS} FROM plans WHERE tenant_id = $1 AND code = $2"

_LIST_PLANS = f"""
SELECT {_PLAN_COLUMNS} FROM plans
 WHERE tenant_id = $1 AND ($2::text IS NULL OR code > $2) AND ($3::boolean IS NULL OR active = $3)
 ORDER BY code
 LIMIT $4
"""

_TENANT = "SELECT timezone, currency FROM tenants WHERE tenant_id = $1"

# A member's purchases serialise here (not on the member row, which earning flows update after
# locking ledger accounts), so two concurrent purchases cannot both stack from the same end.
_LOCK_MEMBER = "SELECT pg_advisory_xact_lock(hashtextextended('loyalty.subscriptions:' || $1 || ':' || $2, 0))"

_HAS_TRIAL = "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant_id = $1 AND member_id = $2 AND trial)"

# The stack a purchase extends: the member's active subscriptions granting the same tier, or, for a
# plan granting none, those of the same plan. (lifetime among them, latest end).
_STACK_END = """
SELECT coalesce(bool_or(ends_at IS NULL), false) AS lifetime, max(ends_at) AS ends_at
  FROM subscriptions
 WHERE tenant_id = $1 AND member_id = $2 AND status = 'active'
   AND CASE WHEN $3::text IS NULL THEN tier_code IS NULL AND plan_code = $4 ELSE tier_code = $3 END
"""

_INSERT_SUB = f"""
INSERT INTO subscriptions (tenant_id, subscription_id, member_id, plan_code, tier_code, duration, trial,
                           bonus_points, paid_amount, currency, paid_at, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING {_SUB_COLUMNS}
"""

_SET_BONUS = "UPDATE subscriptions SET bonus_entry_id = $3 WHERE tenant_id = $1 AND subscription_id = $2"

_FETCH_SUB = f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND subscription_id = $2"

_LOCK_SUB = f"""
SELECT {_SUB_COLUMNS}, bonus_entry_id FROM subscriptions WHERE tenant_id = $1 AND subscription_id = $2 FOR UPDATE
"""

# Ends it at $3 if it is running then; one not yet started (stacked) keeps its dates, its status is enough.
_CANCEL = f"""
UPDATE subscriptions
   SET status = 'cancelled', cancelled_at = $3, refunded = $4,
       ends_at = CASE WHEN starts_at < $3 AND (ends_at IS NULL OR ends_at > $3) THEN $3 ELSE ends_at END
 WHERE tenant_id = $1 AND subscription_id = $2
RETURNING {_SUB_COLUMNS}
"""

_EXPIRE = "UPDATE subscriptions SET status = 'expired' WHERE tenant_id = $1 AND subscription_id = $2"

# Newest first; (created_at, subscription_id) is the keyset.
_LIST_SUBS = f"""
SELECT {_SUB_COLUMNS} FROM subscriptions
 WHERE tenant_id = $1 AND member_id = $2
   AND ($3::timestamptz IS NULL OR (created_at, subscription_id) < ($3::timestamptz, $4::text))
 ORDER BY created_at DESC, subscription_id DESC
 LIMIT $5
"""

# Lapsed active subscriptions, earliest end first (so a member's tier changes are recorded in order);
# rows a cancellation holds are skipped (the cancellation ends them anyway).
_DUE = """
SELECT s.tenant_id, s.subscription_id, s.member_id, s.plan_code, s.tier_code, s.starts_at, s.ends_at,
       p.grants_distribution
  FROM subscriptions s
  JOIN plans p ON p.tenant_id = s.tenant_id AND p.code = s.plan_code
 WHERE s.status = 'active' AND s.ends_at IS NOT NULL AND s.ends_at <= $1
   AND ($2::text IS NULL OR s.tenant_id = $2)
 ORDER BY s.ends_at, s.tenant_id, s.subscription_id
 LIMIT $3
   FOR UPDATE OF s SKIP LOCKED
"""

_PLAN_HISTORY = """
INSERT INTO tier_history (tenant_id, member_id, from_tier, to_tier, source, reason, occurred_at)
VALUES ($1, $2, $3, $4, 'plan', $5, $6)
"""


async def upsert_plan(
    conn: asyncpg.Connection,
    tenant_id: str,
    code: str,
    *,
    name: str,
    duration: str,
    price: int,
    tier_code: str | None,
    bonus_points: int,
    grants_distribution: bool,
    trial: bool,
    active: bool,
) -> asyncpg.Record | None:
    """The plan when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(
        _UPSERT_PLAN,
        tenant_id,
        code,
        name,
        duration,
        price,
        tier_code,
        bonus_points,
        grants_distribution,
        trial,
        active,
    )


async def fetch_plan(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_PLAN, tenant_id, code)


async def list_plans(
    conn: asyncpg.Connection, tenant_id: str, after: str | None, active: bool | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST_PLANS, tenant_id, after, active, limit)


async def tenant_zone_and_currency(conn: asyncpg.Connection, tenant_id: str) -> tuple[str, str]:
    row = await conn.fetchrow(_TENANT, tenant_id)
    return str(row["timezone"]), str(row["currency"])


async def lock_member_subscriptions(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    await conn.execute(_LOCK_MEMBER, tenant_id, member_id)


async def has_trial(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(_HAS_TRIAL, tenant_id, member_id))


async def stack_end(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, tier_code: str | None, plan_code: str
) -> tuple[bool, datetime | None]:
    """(a lifetime subscription is in the stack, the stack's latest end or None if empty)."""
    row = await conn.fetchrow(_STACK_END, tenant_id, member_id, tier_code, plan_code)
    assert row is not None
    return row["lifetime"], row["ends_at"]


async def insert_subscription(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    subscription_id: str,
    member_id: str,
    plan: asyncpg.Record,
    paid_amount: int,
    currency: str,
    paid_at: datetime,
    starts_at: datetime,
    ends_at: datetime | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        _INSERT_SUB,
        tenant_id,
        subscription_id,
        member_id,
        plan["code"],
        plan["tier_code"],
        plan["duration"],
        plan["trial"],
        plan["bonus_points"],
        paid_amount,
        currency,
        paid_at,
        starts_at,
        ends_at,
    )
    assert row is not None
    return row


async def set_bonus_entry(conn: asyncpg.Connection, tenant_id: str, subscription_id: str, entry_id: int) -> None:
    await conn.execute(_SET_BONUS, tenant_id, subscription_id, entry_id)


async def fetch_subscription(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_SUB, tenant_id, subscription_id)


async def lock_subscription(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> asyncpg.Record | None:
    """The row (with its bonus entry), locked until the transaction ends."""
    return await conn.fetchrow(_LOCK_SUB, tenant_id, subscription_id)


async def mark_cancelled(
    conn: asyncpg.Connection, tenant_id: str, subscription_id: str, at: datetime, refunded: bool
) -> asyncpg.Record:
    row = await conn.fetchrow(_CANCEL, tenant_id, subscription_id, at, refunded)
    assert row is not None
    return row


async def mark_expired(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> None:
    await conn.execute(_EXPIRE, tenant_id, subscription_id)


async def list_member_subscriptions(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created_at, subscription_id = before if before is not None else (None, None)
    return await conn.fetch(_LIST_SUBS, tenant_id, member_id, created_at, subscription_id, limit)


async def due_subscriptions(
    conn: asyncpg.Connection, as_of: datetime, tenant_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_DUE, as_of, tenant_id, limit)


async def insert_plan_history(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    from_tier: str,
    to_tier: str,
    reason: str,
    occurred_at: datetime,
) -> None:
    await conn.execute(_PLAN_HISTORY, tenant_id, member_id, from_tier, to_tier, reason, occurred_at)
