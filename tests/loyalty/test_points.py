"""Lock order of the shared point movements (services/loyalty/points.py): a credit (release, task,
adjustment, earning with no pending days) locks the member's accounts in account-id order, as the
ledger's posting trigger does, so it cannot deadlock with a refund or clawback posting to the same
accounts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from services.loyalty import accounts, points
from shared.ledger import Leg, post_entry
from tests.loyalty.conftest import assert_ledger_ok, earn, put_member

EARNED_AT = datetime(2026, 3, 1, tzinfo=UTC)


async def _blocked(pool: asyncpg.Pool, pid: int) -> None:
    """Return once the backend `pid` waits for a lock."""
    async with pool.acquire() as conn:
        for _ in range(500):
            if await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the credit never waited for the posting's lock")


async def test_a_credit_racing_a_posting_to_points_then_debt_does_not_deadlock(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await put_member(loyalty_client, tenant, "m1")
    tid = tenant.tenant_id
    async with loyalty_pool.acquire() as conn:
        ids = dict(
            await conn.fetch(
                "SELECT code, account_id FROM accounts WHERE tenant_id = $1 AND code = ANY($2::text[])",
                tid,
                [accounts.points("m1"), accounts.debt("m1")],
            )
        )
    # The race below deadlocked when the credit locked the debt first: it needs points before debt by id.
    assert ids[accounts.points("m1")] < ids[accounts.debt("m1")]

    async with loyalty_pool.acquire() as first, loyalty_pool.acquire() as second:
        tx_first, tx_second = first.transaction(), second.transaction()
        await tx_first.start()
        await tx_second.start()
        try:
            # A clawback-like flow posts to the available account first (holding its row) ...
            await earn(first, tid, "m1", 50, EARNED_AT, None)
            credit = asyncio.create_task(
                points.credit_available(
                    second,
                    tid,
                    "m1",
                    30,
                    source="issued",
                    earned_at=EARNED_AT,
                    expires=None,
                    key="test:credit:m1",
                    kind="test.credit",
                )
            )
            await _blocked(loyalty_pool, second.get_server_pid())
            # ... then to the debt account, which the waiting credit must not hold.
            await post_entry(
                first,
                tid,
                kind="test.debt",
                idempotency_key="test:debt:m1",
                legs=[Leg(accounts.ISSUED, -20), Leg(accounts.debt("m1"), 20)],
            )
            await tx_first.commit()
            credited = await asyncio.wait_for(credit, 30)
            await tx_second.commit()
        except BaseException:
            for tx in (tx_first, tx_second):
                try:
                    await tx.rollback()
                except asyncpg.InterfaceError:
                    pass  # already finished
            raise
    # The credit read the debt after the posting committed: it repaid it first.
    assert (credited.debt_repaid, credited.available) == (20, 10)
    await assert_ledger_ok(loyalty_client, tenant)
