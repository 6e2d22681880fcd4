"""Point movements that every earning and clawback flow shares (§4.2, §5.4, §5.6): crediting available
points (debt first, then a lot) and reversing earned points (pending, then available, then debt).

Each function posts exactly one ledger entry and moves the lots in the same transaction, so the lot
invariant (§4.3 item 5) holds at commit. Callers own the idempotency key and the business row.

Lock order, the same in every flow: the business row (order, hold, redemption...), then the member's
lots (FEFO order), then the ledger's account rows (the posting trigger, by account id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec
import structlog

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo, credit_lot
from shared.ledger import Leg, post_entry

__all__ = [
    "Credited",
    "Reversed",
    "available_points",
    "credit_available",
    "earn_pending",
    "reverse_points",
]

_log = structlog.get_logger("loyalty.points")

# The tracked accounts among $2 locked in account-id order (the order the posting trigger locks them
# in, FOR NO KEY UPDATE like it), and the debt ($3) read under its lock, so a concurrent repayment
# waits; the ledger still refuses over-repayment (no overdraft on the debt's normal side). Locking the debt row first
# and the others later in the posting would deadlock with a flow posting to both in id order (a
# refund reversing to debt while the release repays it).
_LOCK_WITH_DEBT = """
SELECT coalesce(sum(debits_posted - credits_posted) FILTER (WHERE code = $3), 0)::bigint FROM (
    SELECT code, debits_posted, credits_posted FROM accounts
     WHERE tenant_id = $1 AND code = ANY($2::text[]) AND track_balance
     ORDER BY tenant_id, account_id
       FOR NO KEY UPDATE
) locked
"""

# Locks the member's live lots (FEFO order, like allocate_fefo) and sums them.
_AVAILABLE = """
SELECT coalesce(sum(remaining), 0)::bigint FROM (
    SELECT remaining FROM lots
     WHERE tenant_id = $1 AND member_id = $2 AND remaining > 0
     ORDER BY expires_at ASC NULLS LAST, lot_id
       FOR UPDATE
) live
"""


class Credited(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    replayed: bool
    debt_repaid: int  # went to the member's debt
    available: int  # went to a new lot
    lot_id: int | None


class Reversed(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int | None  # None when nothing moved (all written off under `cap`)
    from_pending: int
    from_available: int
    to_debt: int
    written_off: int

    @property
    def reversed(self) -> int:
        """Points the reversal took back (debt included; written-off points are not)."""
        return self.from_pending + self.from_available + self.to_debt


async def available_points(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> int:
    """Σ remaining of the member's live lots, locked until the transaction ends."""
    return int(await conn.fetchval(_AVAILABLE, tenant_id, member_id))


async def earn_pending(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    points: int,
    *,
    key: str,
    kind: str,
    effective_at: datetime,
    reason: str | None = None,
    source_ref: str | None = None,
) -> int:
    """Issue `points` into the member's pending account (released to available later by a job)."""
    posted = await post_entry(
        conn,
        tenant_id,
        kind=kind,
        idempotency_key=key,
        legs=[Leg(accounts.ISSUED, points), Leg(accounts.pending(member_id), -points)],
        effective_at=effective_at,
        reason=reason,
        source_ref=source_ref,
    )
    return posted.entry_id


async def credit_available(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    points: int,
    *,
    source: Literal["issued", "pending"],
    earned_at: datetime,
    expires: datetime | None,
    key: str,
    kind: str,
    effective_at: datetime | None = None,
    reason: str | None = None,
    source_ref: str | None = None,
) -> Credited:
    """Make `points` available: from `program:points_issued` (tasks, bonuses, adjustments, earning with
    no pending days) or from the member's pending account (release). Open debt is repaid first (§4.2);
    the rest becomes one lot expiring at `expires` (computed by the caller from the earning time).
    A replayed key posts nothing and creates no lot."""
    origin = accounts.ISSUED if source == "issued" else accounts.pending(member_id)
    debt_code, points_code = accounts.debt(member_id), accounts.points(member_id)
    # Every account the entry may touch, locked in id order before the debt is read (see _LOCK_WITH_DEBT).
    debt = int(await conn.fetchval(_LOCK_WITH_DEBT, tenant_id, [origin, debt_code, points_code], debt_code))
    repaid = min(debt, points)
    rest = points - repaid
    legs = [Leg(origin, points)]
    if repaid:
        legs.append(Leg(debt_code, -repaid))
    if rest:
        legs.append(Leg(points_code, -rest))
    posted = await post_entry(
        conn,
        tenant_id,
        kind=kind,
        idempotency_key=key,
        legs=legs,
        effective_at=effective_at or earned_at,
        reason=reason,
        source_ref=source_ref,
    )
    lot_id = None
    if rest and not posted.replayed:
        lot_id = await credit_lot(conn, tenant_id, member_id, rest, earned_at, expires, posted.entry_id)
    return Credited(
        entry_id=posted.entry_id, replayed=posted.replayed, debt_repaid=repaid, available=rest, lot_id=lot_id
    )


async def reverse_points(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    points: int,
    *,
    from_pending: int,
    policy: Literal["debt", "cap"],
    ref: str,
    key: str,
    kind: str,
    effective_at: datetime | None = None,
    reason: str | None = None,
    source_ref: str | None = None,
) -> Reversed:
    """Take back `points` that were issued: up to `from_pending` of them from the pending account (the
    caller knows how much of this earning is still pending), then from available lots (FEFO, recorded
    as `clawback` allocations under `ref`), and the shortfall as debt (`debt`) or lost (`cap`, logged)."""
    pending = min(from_pending, points)
    rest = points - pending
    available = min(rest, await available_points(conn, tenant_id, member_id)) if rest else 0
    shortfall = rest - available
    to_debt = shortfall if policy == "debt" else 0
    written_off = shortfall - to_debt
    if written_off:
        _log.warning(
            "points.clawback_written_off", tenant_id=tenant_id, member_id=member_id, points=written_off, ref=ref
        )
    taken = pending + available + to_debt
    if taken == 0:
        return Reversed(entry_id=None, from_pending=0, from_available=0, to_debt=0, written_off=written_off)
    if available:
        await allocate_fefo(conn, tenant_id, member_id, available, "clawback", ref)
    legs = [Leg(accounts.ISSUED, -taken)]
    if pending:
        legs.append(Leg(accounts.pending(member_id), pending))
    if available:
        legs.append(Leg(accounts.points(member_id), available))
    if to_debt:
        legs.append(Leg(accounts.debt(member_id), to_debt))
    posted = await post_entry(
        conn,
        tenant_id,
        kind=kind,
        idempotency_key=key,
        legs=legs,
        effective_at=effective_at,
        reason=reason,
        source_ref=source_ref,
    )
    return Reversed(
        entry_id=posted.entry_id,
        from_pending=pending,
        from_available=available,
        to_debt=to_debt,
        written_off=written_off,
    )
