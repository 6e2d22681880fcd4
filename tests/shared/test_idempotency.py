"""The idempotency mechanism (§3.3) on a real transaction: claim, replay, conflict, pinned refusal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import asyncpg
import pytest

from shared.errors import DomainError
from shared.idempotency import Outcome, run_idempotent
from shared.ledger import Leg, balances, post_entry
from tests.shared.ledger.conftest import PROGRAM, LedgerTenant


def _earn(ledger: LedgerTenant, conn: asyncpg.Connection, code: str, amount: int, calls: list[int]):
    async def run() -> tuple[int, dict[str, int]]:
        calls.append(amount)
        posted = await post_entry(
            conn,
            ledger.tenant_id,
            kind="earn",
            idempotency_key=uuid.uuid4().hex,
            legs=[Leg(PROGRAM, amount), Leg(code, -amount)],
        )
        return 201, {"entry_id": posted.entry_id, "points": amount}

    return run


def _spend(ledger: LedgerTenant, conn: asyncpg.Connection, code: str, amount: int):
    async def run() -> tuple[int, dict[str, int]]:
        await post_entry(
            conn,
            ledger.tenant_id,
            kind="redeem",
            idempotency_key=uuid.uuid4().hex,
            legs=[Leg(code, amount), Leg(PROGRAM, -amount)],
        )
        return 201, {"points": amount}

    return run


def _attempt(
    ledger: LedgerTenant, conn: asyncpg.Connection, scope: str, key: str, body: dict, run
) -> Awaitable[Outcome]:
    """One idempotent write of this tenant, as a route would make it inside its transaction."""
    return run_idempotent(conn, tenant_id=ledger.tenant_id, scope=scope, key=key, body=body, run=run)


async def _balance(ledger: LedgerTenant, code: str) -> int:
    async with ledger.pool.acquire() as conn:
        return (await balances(conn, ledger.tenant_id, [code]))[code].balance


async def test_retry_with_same_body_replays_the_stored_response(ledger: LedgerTenant) -> None:
    member = await ledger.member("a")
    calls: list[int] = []
    outcomes = []
    for _ in range(2):
        async with ledger.pool.acquire() as conn, conn.transaction():
            outcomes.append(
                await _attempt(ledger, conn, "orders", "o-1", {"points": 30}, _earn(ledger, conn, member, 30, calls))
            )
    assert calls == [30]
    assert (outcomes[0].status, outcomes[0].replayed) == (201, False)
    assert (outcomes[1].status, outcomes[1].replayed, outcomes[1].body) == (201, True, outcomes[0].body)
    assert await _balance(ledger, member) == 30


async def test_same_key_other_body_is_409(ledger: LedgerTenant) -> None:
    member = await ledger.member("a")
    async with ledger.pool.acquire() as conn:
        async with conn.transaction():
            await _attempt(ledger, conn, "orders", "o-1", {"points": 30}, _earn(ledger, conn, member, 30, []))
        with pytest.raises(DomainError) as caught:
            async with conn.transaction():
                await _attempt(ledger, conn, "orders", "o-1", {"points": 31}, _earn(ledger, conn, member, 31, []))
    assert caught.value.type == "idempotency-conflict"
    assert await _balance(ledger, member) == 30


async def test_refusal_is_atomic_and_pinned_for_that_key(ledger: LedgerTenant) -> None:
    member = await ledger.member("a")
    await ledger.earn(member, 10)
    async with ledger.pool.acquire() as conn:
        async with conn.transaction():
            refused = await _attempt(
                ledger, conn, "redemptions", "r-1", {"points": 20}, _spend(ledger, conn, member, 20)
            )
        await ledger.earn(member, 100)  # now it would fit, but the failed attempt stays failed
        async with conn.transaction():
            again = await _attempt(ledger, conn, "redemptions", "r-1", {"points": 20}, _spend(ledger, conn, member, 20))
        entries = await conn.fetchval(
            "SELECT count(*) FROM entries WHERE tenant_id = $1 AND kind = 'redeem'", ledger.tenant_id
        )
    assert (refused.status, refused.media_type) == (409, "application/problem+json")
    assert b"insufficient-balance" in refused.body
    assert (again.status, again.replayed, again.body) == (409, True, refused.body)
    assert entries == 0
    assert await _balance(ledger, member) == 110


async def test_concurrent_claims_of_one_key_run_once(ledger: LedgerTenant) -> None:
    member = await ledger.member("a")
    calls: list[int] = []

    async def attempt() -> tuple[int, bool]:
        async with ledger.pool.acquire() as conn, conn.transaction():
            outcome = await _attempt(
                ledger, conn, "orders", "o-race", {"points": 7}, _earn(ledger, conn, member, 7, calls)
            )
            await asyncio.sleep(0.05)  # hold the claim so the others queue behind it
            return outcome.status, outcome.replayed

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert calls == [7]
    assert sorted(r[1] for r in results) == [False] + [True] * 7
    assert {r[0] for r in results} == {201}
    assert await _balance(ledger, member) == 7


async def test_a_crash_before_commit_leaves_the_key_free(ledger: LedgerTenant) -> None:
    member = await ledger.member("a")
    calls: list[int] = []
    async with ledger.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await _attempt(ledger, conn, "orders", "o-crash", {"points": 5}, _earn(ledger, conn, member, 5, calls))
                raise RuntimeError("connection lost before COMMIT")
        async with conn.transaction():
            retry = await _attempt(
                ledger, conn, "orders", "o-crash", {"points": 5}, _earn(ledger, conn, member, 5, calls)
            )
    assert calls == [5, 5] and not retry.replayed
    assert await _balance(ledger, member) == 5
