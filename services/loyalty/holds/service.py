"""Hold rules (§5.8): points as payment at checkout, in two phases.

    held ──capture(p ≤ held)──▶ captured   held + / redeemed − p / points − (held − p)
      ├────void───────────────▶ voided     held + / points −
      └────expiry (the job)───▶ expired    held + / points −

A hold takes its points from the member's lots first-expiring first (allocations `hold`, ref hold_id)
and resolves at most once. What goes back to available goes back to the lots it came from, with their
original expiry, latest-expiring first, so on a partial capture the first-expiring points are the
ones spent. After `expires_at` a capture is refused (409 `hold-expired`) even before the job ran.
Lock order: the hold row, then the member's lots, then the ledger's account rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from services.loyalty import accounts
from services.loyalty.holds import repository
from services.loyalty.holds.schemas import Hold, HoldIn
from services.loyalty.lots import allocate_fefo, restore_allocations
from services.loyalty.members import repository as members
from services.loyalty.members.service import member_not_found
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import Leg, post_entry

__all__ = ["capture_hold", "expire_hold", "get_hold", "place_hold", "void_hold"]


def _view(row: asyncpg.Record) -> Hold:
    released = 0 if row["status"] == "held" else row["points"] - row["captured_points"]
    return Hold(
        hold_id=row["hold_id"],
        member_id=row["member_id"],
        points=row["points"],
        captured_points=row["captured_points"],
        released_points=released,
        order_ref=row["order_ref"],
        status=row["status"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
    )


def _event(view: Hold, **extra: Any) -> dict[str, Any]:
    fields = ("hold_id", "member_id", "points", "captured_points", "released_points", "order_ref", "status")
    return {name: getattr(view, name) for name in fields} | extra


def hold_not_found(hold_id: str) -> DomainError:
    return DomainError("hold-not-found", 404, f"hold {hold_id} does not exist")


async def place_hold(conn: asyncpg.Connection, tenant_id: str, member_id: str, data: HoldIn) -> Hold:
    """Move `points` from available to held (FEFO lots); 409 `insufficient-points` with nothing written."""
    if await members.fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    now = datetime.now(UTC)
    await allocate_fefo(conn, tenant_id, member_id, data.points, "hold", data.hold_id)
    posted = await post_entry(
        conn,
        tenant_id,
        kind="points.hold",
        idempotency_key=f"hold:{data.hold_id}",
        legs=[Leg(accounts.points(member_id), data.points), Leg(accounts.held(member_id), -data.points)],
        effective_at=now,
        reason="checkout hold",
        source_ref=data.order_ref or f"hold:{data.hold_id}",
    )
    row = await repository.insert_hold(
        conn,
        tenant_id,
        hold_id=data.hold_id,
        member_id=member_id,
        points=data.points,
        order_ref=data.order_ref,
        expires_at=now + timedelta(seconds=data.expires_in_seconds),
        entry_id=posted.entry_id,
    )
    view = _view(row)
    await emit(conn, tenant_id, "hold.created", _event(view, expires_at=view.expires_at), occurred_at=now)
    return view


async def _locked(conn: asyncpg.Connection, tenant_id: str, hold_id: str) -> asyncpg.Record:
    row = await repository.lock_hold(conn, tenant_id, hold_id)
    if row is None:
        raise hold_not_found(hold_id)
    return row


def _resolved(hold_id: str, status: str) -> DomainError:
    if status == "expired":
        return DomainError("hold-expired", 409, f"hold {hold_id} expired; its points are back to available")
    return DomainError("hold-resolved", 409, f"hold {hold_id} is already {status}")


async def capture_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str, points: int) -> tuple[Hold, bool]:
    """Spend `points` of the hold and give the rest back: (view, changed). The same capture again is a
    no-op; any other resolution of a resolved hold is 409."""
    row = await _locked(conn, tenant_id, hold_id)
    status = row["status"]
    if status == "captured" and row["captured_points"] == points:
        return _view(row), False
    if status != "held":
        raise _resolved(hold_id, status)
    now = datetime.now(UTC)
    if now >= row["expires_at"]:  # the job voids it; a late capture must not spend it
        raise DomainError("hold-expired", 409, f"hold {hold_id} expired at {row['expires_at'].isoformat()}")
    held = row["points"]
    if points > held:
        raise DomainError("capture-exceeds-hold", 422, f"hold {hold_id} holds {held} points, {points} asked")
    member_id, rest = row["member_id"], held - points
    if rest:
        await restore_allocations(conn, tenant_id, "hold", hold_id, points=rest)
    legs = [Leg(accounts.held(member_id), held), Leg(accounts.REDEEMED, -points)]
    if rest:
        legs.append(Leg(accounts.points(member_id), -rest))
    posted = await post_entry(
        conn,
        tenant_id,
        kind="points.hold_capture",
        idempotency_key=f"hold-capture:{hold_id}",
        legs=legs,
        effective_at=now,
        reason="checkout capture",
        source_ref=row["order_ref"] or f"hold:{hold_id}",
    )
    view = _view(await repository.resolve_hold(conn, tenant_id, hold_id, "captured", points, posted.entry_id, now))
    await emit(conn, tenant_id, "hold.captured", _event(view), occurred_at=now)
    return view, True


async def _release_all(
    conn: asyncpg.Connection,
    tenant_id: str,
    row: asyncpg.Record,
    status: Literal["voided", "expired"],
    at: datetime,
) -> Hold:
    """Give every held point back to its lots in one entry and resolve the hold as `status`."""
    hold_id, member_id, held = row["hold_id"], row["member_id"], row["points"]
    await restore_allocations(conn, tenant_id, "hold", hold_id)
    action = "void" if status == "voided" else "expire"
    posted = await post_entry(
        conn,
        tenant_id,
        kind=f"points.hold_{action}",
        idempotency_key=f"hold-{action}:{hold_id}",
        legs=[Leg(accounts.held(member_id), held), Leg(accounts.points(member_id), -held)],
        effective_at=at,
        reason="checkout hold voided" if status == "voided" else "checkout hold expired",
        source_ref=row["order_ref"] or f"hold:{hold_id}",
    )
    view = _view(await repository.resolve_hold(conn, tenant_id, hold_id, status, 0, posted.entry_id, at))
    reason = "void" if status == "voided" else "expired"
    await emit(conn, tenant_id, "hold.voided", _event(view, reason=reason), occurred_at=at)
    return view


async def void_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str) -> tuple[Hold, bool]:
    """Give the whole hold back: (view, changed). Voiding a voided or expired hold is a no-op (its points
    are back already); a captured one is 409 `hold-resolved`."""
    row = await _locked(conn, tenant_id, hold_id)
    if row["status"] in ("voided", "expired"):
        return _view(row), False
    if row["status"] != "held":
        raise _resolved(hold_id, row["status"])
    return await _release_all(conn, tenant_id, row, "voided", datetime.now(UTC)), True


async def expire_hold(conn: asyncpg.Connection, tenant_id: str, row: asyncpg.Record) -> Hold:
    """The job's resolution of a due hold (locked by the job's query): all back, at its expiry time."""
    return await _release_all(conn, tenant_id, row, "expired", row["expires_at"])


async def get_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str) -> Hold:
    row = await repository.fetch_hold(conn, tenant_id, hold_id)
    if row is None:
        raise hold_not_found(hold_id)
    return _view(row)
