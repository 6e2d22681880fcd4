"""Lots (§5.6): every credit to available points is a lot with its expiry; spending, holds, clawbacks
and expiry consume lots first-expiring-first (FEFO), recorded as allocations, so a void or a
cancellation gives back exactly the points it took, to the lots it took them from.

Guarantees (the database's CHECKs and keys, and one statement per operation):
- 0 ≤ remaining ≤ amount for every lot; an allocation never restores more than it took.
- An allocation takes all it needs or nothing (insufficient-points, nothing written).
- One allocation row per (purpose, ref, lot): an operation consumes a lot at most once.
- Σ remaining over a member's lots = member:{id}:points whenever the caller posts the matching entry
  in the same transaction (checked by `ledger verify`, services/loyalty/checks.py).

No function here posts to the ledger: the caller posts the entry and moves the lots together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from services.loyalty.periods import expires_at
from shared.errors import DomainError

__all__ = [
    "Allocation",
    "Purpose",
    "allocate_fefo",
    "credit_lot",
    "expires_at",
    "restore_allocations",
    "take_lot",
]

Purpose = Literal["redemption", "hold", "expiry", "clawback", "adjustment"]


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    lot_id: int
    points: int
    expires_at: datetime | None


_CREDIT = """
INSERT INTO lots (tenant_id, member_id, amount, remaining, earned_at, expires_at, source_entry_id)
VALUES ($1, $2, $3, $3, $4, $5, $6)
RETURNING lot_id
"""

# Lock the member's live lots in FEFO order (the order every allocator takes them in, so two never
# deadlock), take from each until `points` are covered, and record what was taken. When the live lots
# hold less than `points`, `take` is empty: nothing is written and the caller learns the total.
_ALLOCATE = """
WITH live AS (
    SELECT lot_id, remaining, expires_at
      FROM lots
     WHERE tenant_id = $1 AND member_id = $2 AND remaining > 0
     ORDER BY expires_at ASC NULLS LAST, lot_id
       FOR UPDATE
), running AS (
    SELECT lot_id, remaining, expires_at,
           sum(remaining) OVER (ORDER BY expires_at ASC NULLS LAST, lot_id) - remaining AS before,
           sum(remaining) OVER () AS total
      FROM live
), take AS (
    SELECT lot_id, expires_at, least(remaining, $3 - before) AS points, before
      FROM running
     WHERE total >= $3 AND before < $3
), used AS (
    UPDATE lots l SET remaining = l.remaining - t.points
      FROM take t
     WHERE l.tenant_id = $1 AND l.lot_id = t.lot_id
), recorded AS (
    INSERT INTO lot_allocations (tenant_id, lot_id, member_id, purpose, ref, points)
    SELECT $1, t.lot_id, $2, $4, $5, t.points FROM take t
)
SELECT t.lot_id, t.points, t.expires_at, (SELECT coalesce(max(total), 0) FROM running)::bigint AS total
  FROM take t
 ORDER BY t.before
"""

# One named lot's whole remaining (the expiry sweep takes lots one by one, not in FEFO order).
_TAKE_LOT = """
WITH lot AS (
    SELECT lot_id, member_id, remaining, expires_at
      FROM lots
     WHERE tenant_id = $1 AND lot_id = $2 AND remaining > 0
       FOR UPDATE
), used AS (
    UPDATE lots l SET remaining = 0 FROM lot WHERE l.tenant_id = $1 AND l.lot_id = lot.lot_id
), recorded AS (
    INSERT INTO lot_allocations (tenant_id, lot_id, member_id, purpose, ref, points)
    SELECT $1, lot.lot_id, lot.member_id, $3, $4, lot.remaining FROM lot
)
SELECT lot_id, remaining AS points, expires_at FROM lot
"""

_AVAILABLE = """
SELECT coalesce(sum(remaining), 0)::bigint FROM lots WHERE tenant_id = $1 AND member_id = $2 AND remaining > 0
"""

# Give back to each lot what the operation still holds of it, once; with a limit ($4), only that many
# points, latest-expiring first (a partial capture keeps the first-expiring points spent, as FEFO would).
_RESTORE = """
WITH open AS (
    SELECT a.allocation_id, a.lot_id, a.points - a.restored AS open, l.expires_at
      FROM lot_allocations a
      JOIN lots l ON l.tenant_id = a.tenant_id AND l.lot_id = a.lot_id
     WHERE a.tenant_id = $1 AND a.purpose = $2 AND a.ref = $3 AND a.restored < a.points
     ORDER BY l.expires_at DESC NULLS FIRST, a.lot_id DESC
       FOR UPDATE OF a
), running AS (
    SELECT allocation_id, lot_id, open,
           sum(open) OVER (ORDER BY expires_at DESC NULLS FIRST, lot_id DESC) - open AS before
      FROM open
), chosen AS (
    SELECT allocation_id, lot_id, least(open, coalesce($4::bigint - before, open)) AS give
      FROM running
     WHERE $4::bigint IS NULL OR before < $4::bigint
), given AS (
    UPDATE lot_allocations a
       SET restored = a.restored + c.give, restored_at = now()
      FROM chosen c
     WHERE a.tenant_id = $1 AND a.allocation_id = c.allocation_id
    RETURNING a.lot_id, c.give
), per_lot AS (
    SELECT lot_id, sum(give) AS give FROM given GROUP BY lot_id
), back AS (
    UPDATE lots l SET remaining = l.remaining + p.give
      FROM per_lot p
     WHERE l.tenant_id = $1 AND l.lot_id = p.lot_id
    RETURNING l.lot_id, p.give, l.expires_at
)
SELECT lot_id, give::bigint AS points, expires_at FROM back ORDER BY expires_at ASC NULLS LAST, lot_id
"""


async def credit_lot(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    amount: int,
    earned_at: datetime,
    expires: datetime | None,
    entry_id: int,
) -> int:
    """A new lot of `amount` points (all remaining), credited by ledger entry `entry_id`; its id."""
    if amount <= 0:
        raise DomainError("invalid-amount", 422, "a lot holds at least one point")
    lot_id: int = await conn.fetchval(_CREDIT, tenant_id, member_id, amount, earned_at, expires, entry_id)
    return lot_id


async def allocate_fefo(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, points: int, purpose: Purpose, ref: str
) -> list[Allocation]:
    """Take `points` from the member's live lots, first-expiring first (never-expiring last); the
    allocations in that order. 409 `insufficient-points` with nothing written when they hold less."""
    if points <= 0:
        raise DomainError("invalid-amount", 422, "allocate at least one point")
    rows = await conn.fetch(_ALLOCATE, tenant_id, member_id, points, purpose, ref)
    if not rows:
        available = await conn.fetchval(_AVAILABLE, tenant_id, member_id)
        raise DomainError(
            "insufficient-points", 409, f"member {member_id} has {available} points available, {points} needed"
        )
    return [Allocation(lot_id=r["lot_id"], points=r["points"], expires_at=r["expires_at"]) for r in rows]


async def take_lot(
    conn: asyncpg.Connection, tenant_id: str, lot_id: int, purpose: Purpose, ref: str
) -> Allocation | None:
    """Take all that remains of one lot (the expiry sweep: purpose `expiry`); None when nothing is left.
    `ref` must be new for each take of a lot: a lot restored after it expired is expired again."""
    row = await conn.fetchrow(_TAKE_LOT, tenant_id, lot_id, purpose, ref)
    return None if row is None else Allocation(lot_id=row["lot_id"], points=row["points"], expires_at=row["expires_at"])


async def restore_allocations(
    conn: asyncpg.Connection, tenant_id: str, purpose: Purpose, ref: str, points: int | None = None
) -> list[Allocation]:
    """Give the points an operation took back to the lots they came from, with their original expiry
    (a lot that expired meanwhile is expired again by the next sweep): all it still holds, or at most
    `points` of it, latest-expiring first (a hold captured in part gives back the rest). What was given
    back per lot; empty when nothing was left to give (already restored, or never allocated)."""
    if points is not None and points <= 0:
        raise DomainError("invalid-amount", 422, "restore at least one point")
    rows = await conn.fetch(_RESTORE, tenant_id, purpose, ref, points)
    return [Allocation(lot_id=r["lot_id"], points=r["points"], expires_at=r["expires_at"]) for r in rows]
