"""Adjustments (§5.9): an admin credits or debits a member's available points, with a reason and the
operator recorded, in one ledger entry keyed `adjust:{adjustment_id}`.

- A credit is `issued + / points −` (open debt repaid first: `issued + / debt − / points −`) and one
  new lot expiring by the programme's policy from now.
- A debit takes available points first-expiring first (`adjustment` allocations) with the entry
  `points + / issued −`. It never creates debt: more than is available is 409 `insufficient-points`
  and nothing is written.
- `qualifying: true` adds a qualifying-points row of the same sign; a credit may raise the earned tier
  at once (a debit never lowers it: downgrades are the tier evaluation job's).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.loyalty import accounts
from services.loyalty.adjustments import repository
from services.loyalty.adjustments.schemas import Adjustment, AdjustmentIn, AdjustmentResult, TierMove
from services.loyalty.lots import allocate_fefo
from services.loyalty.members.repository import fetch_member, tenant_timezone
from services.loyalty.members.service import member_not_found
from services.loyalty.periods import expires_at
from services.loyalty.points import credit_available
from services.loyalty.program.service import load_program
from services.loyalty.tiers import standing
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import Leg, post_entry
from shared.pagination import Page, decode_cursor, encode_cursor

__all__ = ["adjust_points", "list_adjustments"]


def _checked(data: AdjustmentIn) -> str:
    """The reason to record; 422 for a zero amount or a blank or unstorable reason."""
    if data.points == 0:
        raise DomainError("invalid-amount", 422, "an adjustment moves at least one point (+ or −)")
    reason = data.reason.strip()
    if not reason:
        raise DomainError("reason-required", 422, "an adjustment needs a reason")
    if "\x00" in reason:
        raise DomainError("invalid-reason", 422, "the reason holds a NUL character")
    return reason


async def _debit(conn: asyncpg.Connection, tenant_id: str, member_id: str, data: AdjustmentIn, reason: str) -> int:
    """Take -points from available lots (FEFO) and post `points + / issued −`; the entry id."""
    taken = -data.points
    await allocate_fefo(conn, tenant_id, member_id, taken, "adjustment", data.adjustment_id)
    posted = await post_entry(
        conn,
        tenant_id,
        kind="points.adjust",
        idempotency_key=f"adjust:{data.adjustment_id}",
        legs=[Leg(accounts.points(member_id), taken), Leg(accounts.ISSUED, -taken)],
        reason=reason,
        source_ref=f"adjustment:{data.adjustment_id}",
    )
    return posted.entry_id


async def adjust_points(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, data: AdjustmentIn, operator: str
) -> AdjustmentResult:
    """POST /v1/members/{id}/adjustments, inside run_idempotent (a refusal leaves nothing written)."""
    reason = _checked(data)
    if await fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    now = datetime.now(UTC)
    config = (await load_program(conn, tenant_id)).config
    timezone = await tenant_timezone(conn, tenant_id)
    debt_repaid, lot_id = 0, None
    if data.points > 0:
        credited = await credit_available(
            conn,
            tenant_id,
            member_id,
            data.points,
            source="issued",
            earned_at=now,
            expires=expires_at(config.expiry, now, timezone),
            key=f"adjust:{data.adjustment_id}",
            kind="points.adjust",
            reason=reason,
            source_ref=f"adjustment:{data.adjustment_id}",
        )
        entry_id, debt_repaid, lot_id = credited.entry_id, credited.debt_repaid, credited.lot_id
    else:
        entry_id = await _debit(conn, tenant_id, member_id, data, reason)
    row = await repository.insert_adjustment(
        conn,
        tenant_id,
        adjustment_id=data.adjustment_id,
        member_id=member_id,
        points=data.points,
        reason=reason,
        operator=operator,
        qualifying=data.qualifying,
        entry_id=entry_id,
    )
    change = None
    if data.qualifying:
        await standing.add_qualifying(
            conn, tenant_id, member_id, data.points, now, "adjustment", data.adjustment_id, entry_id
        )
        if data.points > 0:
            change = await standing.upgrade_if_qualified(conn, tenant_id, member_id, config, timezone, now)
    tier_change = TierMove(from_tier=change.from_tier, to_tier=change.to_tier) if change else None
    await emit(
        conn,
        tenant_id,
        "points.adjusted",
        {
            "member_id": member_id,
            "adjustment_id": data.adjustment_id,
            "points": data.points,
            "reason": reason,
            "operator": operator,
            "qualifying": data.qualifying,
            "debt_repaid": debt_repaid,
            "entry_id": entry_id,
        },
        occurred_at=now,
    )
    return AdjustmentResult(
        **{f: row[f] for f in Adjustment.__struct_fields__},
        debt_repaid=debt_repaid,
        lot_id=lot_id,
        tier_change=tier_change,
    )


async def list_adjustments(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, limit: int, cursor: str | None
) -> Page[Adjustment]:
    """A member's adjustments, newest first; the cursor carries the last one's (created_at, id)."""
    before: tuple[datetime, str] | None = None
    if cursor:
        stamp, last_id = decode_cursor(cursor, (datetime, str))
        before = (stamp, last_id)
    if await fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    rows = await repository.list_adjustments(conn, tenant_id, member_id, before, limit + 1)
    items = [Adjustment(**{f: r[f] for f in Adjustment.__struct_fields__}) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor([last.created_at, last.adjustment_id]) if last else None)
