"""The expiry jobs (§5.6, §8): expire due lots, and remind members of points about to expire.

`expire-points`: each live lot whose `expires_at` ≤ as_of loses all that remains, as one `expiry`
allocation and one entry `points + / expired −` (kind `points.expire`, effective at the lot's expiry).
A lot can be expired more than once (a cancelled redemption or a voided hold gives points back to a lot
that expired meanwhile), so the allocation ref and the entry key are `expire:lot:{lot_id}:{n}`, n = 1 +
the lot's earlier expiry takes. The lot's `remaining` drops to 0 in the entry's transaction, so a
committed lot is never picked again and a batch rolled back by a crash is redone whole.

`send-expiry-reminders`: each live lot expiring within the tenant's `expiry_reminder_days` after as_of
gets one `expiry_reminders` row and one `points.expiring` event, once per lot ever.
"""

from __future__ import annotations

import asyncpg

from services.loyalty import accounts
from services.loyalty.expiry import repository
from services.loyalty.lots import take_lot
from services.loyalty.program.schemas import ProgramConfig
from shared.events.outbox import emit
from shared.jobs import Job, JobContext, transactional
from shared.ledger import Leg, post_entry

__all__ = ["EXPIRE_POINTS", "SEND_EXPIRY_REMINDERS", "expire_due_lots", "send_expiry_reminders"]

_DEFAULT_REMINDER_DAYS = ProgramConfig().expiry_reminder_days


def expiry_key(lot_id: int, take: int) -> str:
    """The allocation ref and entry key of the `take`-th expiry of a lot."""
    return f"expire:lot:{lot_id}:{take}"


async def expire_due_lots(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Expire at most `ctx.batch_size` due lots; returns how many lots it expired."""
    due = await repository.due_lots(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    if not due:
        return 0
    takes = await repository.earlier_expiry_takes(conn, [(r["tenant_id"], r["lot_id"]) for r in due])
    # Post member by member, so the ledger locks account rows in one order whatever the expiry order.
    for row in sorted(due, key=lambda r: (r["tenant_id"], r["member_id"], r["lot_id"])):
        tenant_id, lot_id, member_id = row["tenant_id"], row["lot_id"], row["member_id"]
        key = expiry_key(lot_id, takes.get((tenant_id, lot_id), 0) + 1)
        taken = await take_lot(conn, tenant_id, lot_id, "expiry", key)
        if taken is None:  # cannot happen: the lot is locked with points left
            continue
        posted = await post_entry(
            conn,
            tenant_id,
            kind="points.expire",
            idempotency_key=key,
            legs=[Leg(accounts.points(member_id), taken.points), Leg(accounts.EXPIRED, -taken.points)],
            effective_at=row["expires_at"],
            source_ref=f"lot:{lot_id}",
        )
        if posted.replayed:  # the lot still had points, so this take's entry must be new
            raise RuntimeError(f"expiry entry {key} already exists for a lot with points left")
        await emit(
            conn,
            tenant_id,
            "points.expired",
            {
                "member_id": member_id,
                "lot_id": lot_id,
                "points": taken.points,
                "expires_at": row["expires_at"],
                "entry_id": posted.entry_id,
            },
            occurred_at=row["expires_at"],
        )
    return len(due)


async def send_expiry_reminders(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Remind at most `ctx.batch_size` lots; returns how many lots it looked at (each now has its row)."""
    due = await repository.due_reminders(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size, _DEFAULT_REMINDER_DAYS)
    if not due:
        return 0
    inserted = await repository.record_reminders(conn, due)
    for row in due:
        if (row["tenant_id"], row["lot_id"]) not in inserted:  # another run reminded it first
            continue
        await emit(
            conn,
            row["tenant_id"],
            "points.expiring",
            {
                "member_id": row["member_id"],
                "lot_id": row["lot_id"],
                "points": row["remaining"],
                "expires_at": row["expires_at"],
                "last_day": row["last_day"],
            },
            occurred_at=ctx.as_of,
        )
    return len(due)


EXPIRE_POINTS = Job(
    name="expire-points",
    description="Expire what remains of every lot whose expiry time has passed (points + / expired −)",
    batch=transactional(expire_due_lots),
    interval_seconds=300.0,
)

SEND_EXPIRY_REMINDERS = Job(
    name="send-expiry-reminders",
    description="Emit points.expiring once per lot expiring within the programme's expiry_reminder_days",
    batch=transactional(send_expiry_reminders),
    interval_seconds=3600.0,
)
