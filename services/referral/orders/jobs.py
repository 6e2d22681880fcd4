"""The release job (§8): frozen commission whose release time has come moves to available.

One entry per commission row, keyed `release:{order_id}:{item_id}:{level}`, so a batch re-run after a
crash posts nothing twice; the row's state moves in the same transaction, so a finished row is never
picked again. Open debt is repaid first out of what is released (§4.2).
"""

from __future__ import annotations

import asyncpg

from services.referral import accounts
from services.referral.orders import repository
from shared.events.outbox import emit
from shared.jobs import Job, JobContext, transactional
from shared.ledger import Leg, post_entry

__all__ = ["RELEASE_COMMISSION", "release_due_commission"]


async def release_due_commission(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Release at most `ctx.batch_size` due rows; returns how many rows it settled."""
    rows = await repository.due_commissions(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    if not rows:
        return 0
    # Lock every beneficiary's commission accounts up front, in the ledger's order, then read the debt.
    members = sorted({(row["tenant_id"], row["beneficiary_id"]) for row in rows})
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    tenant_ids: list[str] = []
    codes: list[str] = []
    for tenant_id, member in members:
        for code in (accounts.frozen(member), accounts.available(member), accounts.debt(member)):
            tenant_ids.append(tenant_id)
            codes.append(code)
        owners[(tenant_id, accounts.debt(member))] = (tenant_id, member)
    debt: dict[tuple[str, str], int] = {}
    for account in await repository.lock_member_accounts(conn, tenant_ids, codes):
        owner = owners.get((account["tenant_id"], account["code"]))
        if owner is not None:
            debt[owner] = account["debits_posted"] - account["credits_posted"]

    entry_ids: list[int | None] = []
    for row in rows:
        tenant_id, member = row["tenant_id"], row["beneficiary_id"]
        net = row["amount"] - row["reversed_amount"]
        if net <= 0:  # refunds took it all: nothing to move (the row is marked reversed)
            entry_ids.append(None)
            continue
        repaid = min(debt.get((tenant_id, member), 0), net)
        debt[(tenant_id, member)] = debt.get((tenant_id, member), 0) - repaid
        legs = [Leg(accounts.frozen(member), net)]
        if repaid:
            legs.append(Leg(accounts.debt(member), -repaid))
        if net > repaid:
            legs.append(Leg(accounts.available(member), -(net - repaid)))
        key = f"release:{row['order_id']}:{row['item_id']}:{row['level']}"
        posted = await post_entry(
            conn,
            tenant_id,
            kind="commission.release",
            idempotency_key=key,
            legs=legs,
            effective_at=row["release_at"],
            source_ref=f"order:{row['order_id']}",
        )
        entry_ids.append(posted.entry_id)
        await emit(
            conn,
            tenant_id,
            "commission.released",
            {
                "order_id": row["order_id"],
                "item_id": row["item_id"],
                "level": row["level"],
                "member_id": member,
                "amount": net,
                "debt_repaid": repaid,
                "available": net - repaid,
                "release_at": row["release_at"],
            },
            occurred_at=row["release_at"],
        )
    await repository.mark_released(
        conn,
        ctx.as_of,
        (
            [row["tenant_id"] for row in rows],
            [row["order_id"] for row in rows],
            [row["item_id"] for row in rows],
            [row["level"] for row in rows],
            entry_ids,
        ),
    )
    return len(rows)


RELEASE_COMMISSION = Job(
    name="release-commission",
    description="Move frozen commission whose release time has passed to available, repaying open debt first",
    batch=transactional(release_due_commission),
    interval_seconds=60.0,
)
