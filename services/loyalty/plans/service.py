"""Paid plans (§5.3): plan definitions, purchases that start or extend a membership, cancellation with
or without refund, and the tier a running plan grants (history and `member.tier_changed`, source `plan`).

A purchase stacks on the member's active subscriptions granting the same tier (a plan granting none
stacks on its own plan): it starts at max(paid_at, their latest end), so a renewal before the end
extends it and a renewal after a lapse starts at payment, never at the lapsed end (CRMEB's bug).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from services.loyalty.members.repository import active_plan_tier, fetch_member
from services.loyalty.members.service import member_not_found
from services.loyalty.periods import add_months, expires_at
from services.loyalty.plans import repository
from services.loyalty.plans.schemas import (
    Plan,
    PlanIn,
    Subscription,
    SubscriptionIn,
    SubscriptionStarted,
)
from services.loyalty.points import credit_available, reverse_points
from services.loyalty.program.service import load_program
from services.loyalty.tiers import standing
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import load_tiers
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.http import content_etag
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = [
    "FUTURE_SKEW",
    "cancel_subscription",
    "effective_tier",
    "get_plan",
    "get_subscription",
    "list_plans",
    "list_subscriptions",
    "plan_end",
    "put_plan",
    "record_plan_tier_change",
    "subscribe",
    "subscription_view",
]

# §3.4: a caller's time may run ahead of ours by this much (clock skew), no more.
FUTURE_SKEW = timedelta(minutes=5)

_MONTHS = {"P1M": 1, "P3M": 3, "P1Y": 12}


def plan_end(starts_at: datetime, duration: str, timezone: str) -> datetime | None:
    """The end of a plan starting at `starts_at`: whole months in the tenant's zone, clamped to the
    month's end (Jan 31 + P1M = Feb 28 or 29); None for lifetime."""
    if duration == "lifetime":
        return None
    local = starts_at.astimezone(ZoneInfo(timezone))
    return add_months(local, _MONTHS[duration]).astimezone(UTC)


def _plan_view(row: asyncpg.Record) -> Plan:
    return Plan(**{field: row[field] for field in Plan.__struct_fields__})


def subscription_view(row: asyncpg.Record) -> Subscription:
    return Subscription(**{field: row[field] for field in Subscription.__struct_fields__})


def _plan_not_found(code: str) -> DomainError:
    return DomainError("plan-not-found", 404, f"plan {code} does not exist")


def _subscription_not_found(subscription_id: str) -> DomainError:
    return DomainError("subscription-not-found", 404, f"subscription {subscription_id} does not exist")


def _trial_used(member_id: str) -> DomainError:
    return DomainError("trial-used", 409, f"member {member_id} has already had a trial")


# --- plans -------------------------------------------------------------------------------------------


async def put_plan(
    conn: asyncpg.Connection, tenant_id: str, code: str, data: PlanIn, if_match: str | None
) -> tuple[bool, Plan]:
    """Create or replace a plan: (created, plan). Existing subscriptions keep the plan as bought."""
    if if_match is not None:
        current = await repository.fetch_plan(conn, tenant_id, code)
        if current is None or if_match.strip() not in {content_etag(_plan_view(current)), "*"}:
            raise DomainError("precondition-failed", 412, f"If-Match does not match plan {code}")
    if data.tier_code is not None and data.tier_code not in {t.code for t in await load_tiers(conn, tenant_id)}:
        raise DomainError("unknown-tier", 422, f"no tier {data.tier_code}")
    row = await repository.upsert_plan(
        conn,
        tenant_id,
        code,
        name=data.name,
        duration=data.duration,
        price=data.price,
        tier_code=data.tier_code,
        bonus_points=data.bonus_points,
        grants_distribution=data.grants_distribution,
        trial=data.trial,
        active=data.active,
    )
    if row is None:
        return False, await get_plan(conn, tenant_id, code)
    return row["created"], _plan_view(row)


async def get_plan(conn: asyncpg.Connection, tenant_id: str, code: str) -> Plan:
    row = await repository.fetch_plan(conn, tenant_id, code)
    if row is None:
        raise _plan_not_found(code)
    return _plan_view(row)


async def list_plans(
    conn: asyncpg.Connection, tenant_id: str, active: bool | None, limit: int, cursor: str | None
) -> Page[Plan]:
    """Plans by code."""
    (after,) = decode_cursor(cursor, (str,)) if cursor else (None,)
    rows = await repository.list_plans(conn, tenant_id, after, active, limit + 1)
    items = [_plan_view(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > limit else None)


# --- the tier a plan grants ------------------------------------------------------------------------


async def effective_tier(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, tiers: list[Tier], at: datetime
) -> Tier:
    """The higher of the member's earned tier and the tier of a plan running at `at` (as GET member)."""
    member = await fetch_member(conn, tenant_id, member_id)
    return await _with_plan(
        conn, tenant_id, member_id, tiers, at, member["earned_tier"] if member is not None else None
    )


async def _with_plan(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, tiers: list[Tier], at: datetime, earned_tier: str | None
) -> Tier:
    """The higher of `earned_tier` and the tier of the member's plan running at `at`."""
    plan = await active_plan_tier(conn, tenant_id, member_id, at)
    return standing.effective_tier(tiers, earned_tier, plan["tier_code"] if plan is not None else None)


async def record_plan_tier_change(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    before: Tier,
    after: Tier,
    reason: str,
    occurred_at: datetime,
) -> None:
    """History (source `plan`) and `member.tier_changed` when a plan made the effective tier move."""
    if before.code == after.code:
        return
    await repository.insert_plan_history(conn, tenant_id, member_id, before.code, after.code, reason, occurred_at)
    await emit(
        conn,
        tenant_id,
        "member.tier_changed",
        {
            "member_id": member_id,
            "from_tier": before.code,
            "to_tier": after.code,
            "direction": "up" if after.rank > before.rank else "down",
            "source": "plan",
            "reason": reason,
        },
        occurred_at=occurred_at,
    )


# --- subscriptions ---------------------------------------------------------------------------------


async def _purchasable_plan(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record:
    plan = await repository.fetch_plan(conn, tenant_id, code)
    if plan is None:
        raise DomainError("unknown-plan", 422, f"no plan {code}")
    if not plan["active"]:
        raise DomainError("plan-inactive", 422, f"plan {code} is no longer sold")
    return plan


async def _credit_bonus(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    subscription_id: str,
    points: int,
    paid_at: datetime,
    timezone: str,
) -> None:
    """The plan's bonus points: available at once (debt repaid first), expiring as earned at payment."""
    config = (await load_program(conn, tenant_id)).config
    credited = await credit_available(
        conn,
        tenant_id,
        member_id,
        points,
        source="issued",
        earned_at=paid_at,
        expires=expires_at(config.expiry, paid_at, timezone),
        key=f"plan-bonus:{subscription_id}",
        kind="plan.bonus",
        reason="plan_bonus",
        source_ref=f"subscription:{subscription_id}",
    )
    await repository.set_bonus_entry(conn, tenant_id, subscription_id, credited.entry_id)


async def subscribe(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, data: SubscriptionIn
) -> SubscriptionStarted:
    """Start or extend the member's plan; bonus points, `plan.activated`, and the tier if it rises."""
    paid_at = checked_time(data.paid_at, "paid_at")
    now = datetime.now(UTC)
    if paid_at > now + FUTURE_SKEW:
        raise DomainError("invalid-timestamp", 422, "paid_at lies more than 5 minutes in the future")
    member = await fetch_member(conn, tenant_id, member_id)
    if member is None:
        raise member_not_found(member_id)
    plan = await _purchasable_plan(conn, tenant_id, data.plan_code)
    await repository.lock_member_subscriptions(conn, tenant_id, member_id)
    if plan["trial"] and await repository.has_trial(conn, tenant_id, member_id):
        raise _trial_used(member_id)
    lifetime, current_end = await repository.stack_end(conn, tenant_id, member_id, plan["tier_code"], plan["code"])
    if lifetime:
        raise DomainError(
            "lifetime-active", 409, f"member {member_id} already holds a lifetime plan of this tier; nothing to extend"
        )
    starts_at = max(paid_at, current_end) if current_end is not None else paid_at
    timezone, currency = await repository.tenant_zone_and_currency(conn, tenant_id)
    ends_at = plan_end(starts_at, plan["duration"], timezone)

    tiers = await load_tiers(conn, tenant_id)
    at = max(now, paid_at)
    # The tier this subscription moves, against the earned tier read above: the subscription and its
    # bonus (not qualifying points) leave that as it is, so only the plan side is read again after.
    before = await _with_plan(conn, tenant_id, member_id, tiers, at, member["earned_tier"])
    try:
        row = await repository.insert_subscription(
            conn,
            tenant_id,
            subscription_id=data.subscription_id,
            member_id=member_id,
            plan=plan,
            paid_amount=data.paid_amount,
            currency=currency,
            paid_at=paid_at,
            starts_at=starts_at,
            ends_at=ends_at,
        )
    except asyncpg.UniqueViolationError as exc:  # the partial unique index backs the check above
        if exc.constraint_name == "subscriptions_one_trial":
            raise _trial_used(member_id) from None
        raise
    if plan["bonus_points"]:
        await _credit_bonus(conn, tenant_id, member_id, data.subscription_id, plan["bonus_points"], paid_at, timezone)
    await emit(
        conn,
        tenant_id,
        "plan.activated",
        {
            "member_id": member_id,
            "plan_code": plan["code"],
            "subscription_id": data.subscription_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "tier_code": plan["tier_code"],
            "grants_distribution": plan["grants_distribution"],
        },
        occurred_at=paid_at,
    )
    after = await _with_plan(conn, tenant_id, member_id, tiers, at, member["earned_tier"])
    await record_plan_tier_change(conn, tenant_id, member_id, before, after, "plan_started", at)
    view = subscription_view(row)
    return SubscriptionStarted(**msgspec.structs.asdict(view), plan_ends_at=ends_at)


async def cancel_subscription(
    conn: asyncpg.Connection, tenant_id: str, subscription_id: str, refund: bool
) -> tuple[Subscription, bool]:
    """End the subscription now (once); with `refund` its bonus points go back (debt if spent). Returns
    the view and whether anything changed (False: the same cancellation again)."""
    row = await repository.lock_subscription(conn, tenant_id, subscription_id)
    if row is None:
        raise _subscription_not_found(subscription_id)
    if row["status"] == "cancelled":
        if row["refunded"] == refund:
            return subscription_view(row), False
        done = "with" if row["refunded"] else "without"
        raise DomainError("already-cancelled", 409, f"subscription {subscription_id} was cancelled {done} refund")
    if row["status"] == "expired":
        raise DomainError("subscription-expired", 409, f"subscription {subscription_id} has already expired")

    member_id = row["member_id"]
    now = datetime.now(UTC)
    tiers = await load_tiers(conn, tenant_id)
    before = await effective_tier(conn, tenant_id, member_id, tiers, now)
    updated = await repository.mark_cancelled(conn, tenant_id, subscription_id, now, refund)
    reversed_points = to_debt = 0
    if refund and row["bonus_entry_id"] is not None:
        config = (await load_program(conn, tenant_id)).config
        reversal = await reverse_points(
            conn,
            tenant_id,
            member_id,
            row["bonus_points"],
            from_pending=0,
            policy=config.negative_balance,
            ref=f"plan-refund:{subscription_id}",
            key=f"plan-refund:{subscription_id}",
            kind="plan.refund",
            effective_at=now,
            reason="plan_refund",
            source_ref=f"subscription:{subscription_id}",
        )
        reversed_points, to_debt = reversal.reversed, reversal.to_debt
    after = await effective_tier(conn, tenant_id, member_id, tiers, now)
    await record_plan_tier_change(conn, tenant_id, member_id, before, after, "plan_ended", now)
    plan = await repository.fetch_plan(conn, tenant_id, row["plan_code"])
    await emit(
        conn,
        tenant_id,
        "plan.cancelled",
        {
            "member_id": member_id,
            "plan_code": row["plan_code"],
            "subscription_id": subscription_id,
            "tier_code": row["tier_code"],
            "ends_at": updated["ends_at"],
            "refund": refund,
            "points_reversed": reversed_points,
            "debt": to_debt,
            "grants_distribution": bool(plan is not None and plan["grants_distribution"]),
        },
        occurred_at=now,
    )
    return subscription_view(updated), True


async def get_subscription(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> Subscription:
    row = await repository.fetch_subscription(conn, tenant_id, subscription_id)
    if row is None:
        raise _subscription_not_found(subscription_id)
    return subscription_view(row)


async def list_subscriptions(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, limit: int, cursor: str | None
) -> Page[Subscription]:
    """A member's subscriptions, newest purchase first."""
    before = decode_cursor(cursor, (datetime, str)) if cursor else None
    if await fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    rows = await repository.list_member_subscriptions(conn, tenant_id, member_id, before, limit + 1)
    items = [subscription_view(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor([last.created_at, last.subscription_id]) if last else None)
