"""The plan-expiry job (§8, §5.3): active subscriptions whose end has come become `expired`.

Each one emits `plan.expired` and, when the member's effective tier falls with it, a `plan_ended` tier
history row and `member.tier_changed` at the subscription's end. The status moves in the same
transaction, so a finished subscription is never picked again; nothing here posts to the ledger.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.loyalty.plans import repository
from services.loyalty.plans.service import effective_tier, record_plan_tier_change
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import load_tiers
from shared.events.outbox import emit
from shared.jobs import Job, JobContext, transactional

__all__ = ["EXPIRE_PLANS", "expire_lapsed_plans"]

_JUST_BEFORE = timedelta(microseconds=1)


async def expire_lapsed_plans(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Expire at most `ctx.batch_size` lapsed subscriptions, earliest end first; returns how many."""
    rows = await repository.due_subscriptions(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    tiers_of: dict[str, list[Tier]] = {}
    for row in rows:
        tenant_id, member_id, ends_at = row["tenant_id"], row["member_id"], row["ends_at"]
        if tenant_id not in tiers_of:
            tiers_of[tenant_id] = await load_tiers(conn, tenant_id)
        tiers = tiers_of[tenant_id]
        # the tier just before and at its end: what this subscription's lapse itself changed
        before = await effective_tier(conn, tenant_id, member_id, tiers, ends_at - _JUST_BEFORE)
        await repository.mark_expired(conn, tenant_id, row["subscription_id"])
        after = await effective_tier(conn, tenant_id, member_id, tiers, ends_at)
        await emit(
            conn,
            tenant_id,
            "plan.expired",
            {
                "member_id": member_id,
                "plan_code": row["plan_code"],
                "subscription_id": row["subscription_id"],
                "starts_at": row["starts_at"],
                "ends_at": ends_at,
                "tier_code": row["tier_code"],
                "grants_distribution": row["grants_distribution"],
            },
            occurred_at=ends_at,
        )
        await record_plan_tier_change(conn, tenant_id, member_id, before, after, "plan_ended", ends_at)
    return len(rows)


EXPIRE_PLANS = Job(
    name="expire-plans",
    description="End active subscriptions whose end has passed: plan.expired, and the tier they granted",
    batch=transactional(expire_lapsed_plans),
    interval_seconds=60.0,
)
