"""A member's earned tier (§5.2): qualifying points, the immediate upgrade when an earning crosses a
threshold, and every change of earned tier recorded in `tier_history` with `member.tier_changed`.

Downgrades happen only in the tier evaluation job (after the grace days); it calls `change_tier` too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import asyncpg
import msgspec

from services.loyalty.periods import window_start
from services.loyalty.program.schemas import ProgramConfig
from services.loyalty.tiers.repository import qualifying_sum_sql
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import load_tiers
from shared.events.outbox import emit

__all__ = [
    "QualifyingSource",
    "TierChange",
    "TierReason",
    "add_qualifying",
    "change_tier",
    "effective_tier",
    "qualified_tier",
    "qualifying_total",
    "upgrade_if_qualified",
]

QualifyingSource = Literal["purchase", "refund", "task", "adjustment", "plan"]
TierReason = Literal["upgrade", "downgrade", "plan_started", "plan_ended", "refund", "admin"]


def effective_tier(tiers: list[Tier], earned_code: str | None, plan_code: str | None) -> Tier:
    """The tier a member is treated as: the higher of the earned tier (none or an unknown code: the
    entry tier, `tiers[0]` by rank) and the tier of a running plan (an unknown code: no plan)."""
    by_code = {tier.code: tier for tier in tiers}
    earned = by_code.get(earned_code or "", tiers[0])
    granted = by_code.get(plan_code) if plan_code is not None else None
    return granted if granted is not None and granted.rank > earned.rank else earned


class TierChange(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    from_tier: str
    to_tier: str
    reason: TierReason
    occurred_at: datetime


_ADD = """
INSERT INTO qualifying_points (tenant_id, member_id, points, occurred_at, source, source_ref, entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# The member's earned tier and qualifying total in the window [$3, $4] (no lower bound when $3 is NULL).
_STANDING = f"""
SELECT m.earned_tier, {qualifying_sum_sql("$1", "$2", "$3", "$4")} AS qualifying
  FROM members m
 WHERE m.tenant_id = $1 AND m.member_id = $2
"""

# Moves the earned tier only if it is still one of $3 (the tiers the caller decided from), so two
# concurrent changes cannot both apply: the second re-reads the row after the first commits.
_CHANGE = """
UPDATE members
   SET earned_tier = $4, tier_since = $5, downgrade_due_at = NULL, version = version + 1, updated_at = now()
 WHERE tenant_id = $1 AND member_id = $2 AND coalesce(earned_tier, $6) = ANY($3::text[])
RETURNING member_id
"""

_HISTORY = """
INSERT INTO tier_history (tenant_id, member_id, from_tier, to_tier, source, reason, occurred_at)
VALUES ($1, $2, $3, $4, 'earned', $5, $6)
"""


async def add_qualifying(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    points: int,
    occurred_at: datetime,
    source: QualifyingSource,
    source_ref: str,
    entry_id: int | None = None,
) -> None:
    """Record earned (> 0) or reversed (< 0) qualifying points at the earning's own time."""
    if points:
        await conn.execute(_ADD, tenant_id, member_id, points, occurred_at, source, source_ref, entry_id)


async def qualifying_total(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, config: ProgramConfig, timezone: str, as_of: datetime
) -> tuple[str | None, int]:
    """(earned tier code or None for the entry tier, qualifying points in the window ending at as_of)."""
    since = window_start(config.tier_window, as_of, timezone)
    row = await conn.fetchrow(_STANDING, tenant_id, member_id, since, as_of)
    return (None, 0) if row is None else (row["earned_tier"], row["qualifying"])


def qualified_tier(tiers: list[Tier], points: int) -> Tier:
    """The highest tier whose threshold `points` reach (tiers by rank; the entry tier's is 0)."""
    best = tiers[0]
    for tier in tiers:
        if tier.threshold <= points:
            best = tier
    return best


async def change_tier(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    tiers: list[Tier],
    from_tier: Tier,
    to_tier: Tier,
    reason: TierReason,
    occurred_at: datetime,
) -> TierChange | None:
    """Move the earned tier from `from_tier` to `to_tier` (None if someone moved it first), with history
    and `member.tier_changed`."""
    moved = await conn.fetchval(
        _CHANGE, tenant_id, member_id, [from_tier.code], to_tier.code, occurred_at, tiers[0].code
    )
    if moved is None:
        return None
    await conn.execute(_HISTORY, tenant_id, member_id, from_tier.code, to_tier.code, reason, occurred_at)
    await emit(
        conn,
        tenant_id,
        "member.tier_changed",
        {
            "member_id": member_id,
            "from_tier": from_tier.code,
            "to_tier": to_tier.code,
            "direction": "up" if to_tier.rank > from_tier.rank else "down",
            "source": "earned",
            "reason": reason,
        },
        occurred_at=occurred_at,
    )
    return TierChange(
        member_id=member_id, from_tier=from_tier.code, to_tier=to_tier.code, reason=reason, occurred_at=occurred_at
    )


async def upgrade_if_qualified(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    config: ProgramConfig,
    timezone: str,
    occurred_at: datetime,
    tiers: list[Tier] | None = None,
) -> TierChange | None:
    """After an earning: raise the earned tier at once if the qualifying points now reach a higher
    threshold (never lowers it). The window ends at the later of now and the earning's time."""
    as_of = max(datetime.now(UTC), occurred_at)
    earned_code, points = await qualifying_total(conn, tenant_id, member_id, config, timezone, as_of)
    tiers = tiers if tiers is not None else await load_tiers(conn, tenant_id)
    by_code = {tier.code: tier for tier in tiers}
    current = by_code.get(earned_code, tiers[0]) if earned_code else tiers[0]
    target = qualified_tier(tiers, points)
    if target.rank <= current.rank:
        return None
    return await change_tier(conn, tenant_id, member_id, tiers, current, target, "upgrade", occurred_at)
