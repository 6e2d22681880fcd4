"""The release job (§8): pending points whose return window has ended become available.

One entry per order, keyed `release:{order_id}`, so a batch re-run after a crash posts nothing twice;
the order is marked released in the same transaction, so a released order is never picked again. The
points become a lot expiring at the time fixed at payment (`lot_expires_at`, from `paid_at`), after
open debt is repaid (§4.2). An order with nothing left (refunded in full while pending) is marked
released without an entry.
"""

from __future__ import annotations

import asyncpg

from services.loyalty import points
from services.loyalty.orders import repository
from shared.events.outbox import emit
from shared.jobs import Job, JobContext, transactional

__all__ = ["RELEASE_PENDING_POINTS", "release_pending_points"]


async def release_pending_points(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Release at most `ctx.batch_size` due orders; returns how many it settled."""
    rows = await repository.due_orders(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    if not rows:
        return 0
    entry_ids: list[int | None] = []
    for row in rows:
        net = row["points"] - row["reversed_points"]
        if net == 0:
            entry_ids.append(None)
            continue
        tenant_id, member_id, order_id = row["tenant_id"], row["member_id"], row["order_id"]
        credited = await points.credit_available(
            conn,
            tenant_id,
            member_id,
            net,
            source="pending",
            earned_at=row["paid_at"],
            expires=row["lot_expires_at"],
            key=f"release:{order_id}",
            kind="points.release",
            effective_at=row["pending_until"],
            reason="release",
            source_ref=f"order:{order_id}",
        )
        entry_ids.append(credited.entry_id)
        await emit(
            conn,
            tenant_id,
            "points.released",
            {
                "member_id": member_id,
                "order_id": order_id,
                "points": net,
                "debt_repaid": credited.debt_repaid,
                "available": credited.available,
                "lot_expires_at": row["lot_expires_at"],
            },
            occurred_at=row["pending_until"],
        )
    await repository.mark_released(
        conn,
        ctx.as_of,
        ([row["tenant_id"] for row in rows], [row["order_id"] for row in rows], entry_ids),
    )
    return len(rows)


RELEASE_PENDING_POINTS = Job(
    name="release-pending-points",
    description="Make pending purchase points available once their pending days have passed, repaying debt first",
    batch=transactional(release_pending_points),
    interval_seconds=60.0,
)
