"""The hold-expiry job (§8): held holds whose `expires_at` has passed are voided by expiry.

Per hold: its points go back to the lots they came from, one entry `hold-expire:{hold_id}` (held + /
points −), status `expired`, event `hold.voided` with reason `expired`; all in the batch's transaction,
so a finished hold is never picked again and a re-run after a crash posts nothing twice.
"""

from __future__ import annotations

import asyncpg

from services.loyalty.holds import repository
from services.loyalty.holds.service import expire_hold
from shared.jobs import Job, JobContext, transactional

__all__ = ["EXPIRE_HOLDS", "expire_due_holds"]


async def expire_due_holds(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Expire at most `ctx.batch_size` due holds; returns how many it expired."""
    rows = await repository.due_holds(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    for row in rows:
        await expire_hold(conn, row["tenant_id"], row)
    return len(rows)


EXPIRE_HOLDS = Job(
    name="expire-holds",
    description="Void checkout holds whose time has passed: their points go back to the lots they came from",
    batch=transactional(expire_due_holds),
    interval_seconds=60.0,
)
