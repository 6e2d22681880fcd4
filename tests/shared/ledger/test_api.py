"""The ledger's Python API on worked examples: what a service sees when it posts, replays, reverses."""

from __future__ import annotations

import asyncpg
import pytest

from shared.errors import DomainError
from shared.ledger import Leg, balances, get_entry, history, open_account, post_entry, reverse_entry, verify
from tests.shared.ledger.conftest import PROGRAM, LedgerTenant


async def _post(ledger: LedgerTenant, key: str, legs: list[Leg], kind: str = "earn") -> tuple[int, bool]:
    async with ledger.pool.acquire() as conn, conn.transaction():
        posted = await post_entry(conn, ledger.tenant_id, kind=kind, idempotency_key=key, legs=legs, reason="test")
    return posted.entry_id, posted.replayed


async def _balance(ledger: LedgerTenant, code: str) -> int:
    async with ledger.pool.acquire() as conn:
        return (await balances(conn, ledger.tenant_id, [code]))[code].balance


async def _refusal(ledger: LedgerTenant, operation) -> DomainError:
    async with ledger.pool.acquire() as conn:
        with pytest.raises(DomainError) as caught:
            async with conn.transaction():
                await operation(conn)
    return caught.value


async def test_earn_credits_member_and_debits_untracked_programme(ledger: LedgerTenant) -> None:
    member = await ledger.member("alice")
    await ledger.earn(member, 70)
    await ledger.earn(member, 30)
    async with ledger.pool.acquire() as conn:
        found = await balances(conn, ledger.tenant_id, [member, PROGRAM])
        program_row = await conn.fetchrow(
            "SELECT debits_posted, credits_posted FROM accounts WHERE tenant_id = $1 AND code = $2",
            ledger.tenant_id,
            PROGRAM,
        )
    assert found[member].balance == 100 and found[member].credits_posted == 100
    assert found[PROGRAM].balance == 100  # derived from postings: the hot account keeps no counter
    assert tuple(program_row) == (0, 0)


async def test_replay_returns_the_first_entry_and_writes_nothing(ledger: LedgerTenant) -> None:
    member = await ledger.member("bob")
    legs = [Leg(PROGRAM, 25), Leg(member, -25)]
    first = await _post(ledger, "order-1", legs)
    second = await _post(ledger, "order-1", legs)
    assert first == (first[0], False) and second == (first[0], True)
    assert await _balance(ledger, member) == 25


async def test_same_key_other_legs_is_idempotency_conflict(ledger: LedgerTenant) -> None:
    member = await ledger.member("bob")
    await _post(ledger, "order-1", [Leg(PROGRAM, 25), Leg(member, -25)])

    async def other(conn: asyncpg.Connection) -> None:
        await post_entry(
            conn, ledger.tenant_id, kind="earn", idempotency_key="order-1", legs=[Leg(PROGRAM, 26), Leg(member, -26)]
        )

    refusal = await _refusal(ledger, other)
    assert (refusal.type, refusal.status) == ("idempotency-conflict", 409)
    assert await _balance(ledger, member) == 25


async def test_spend_beyond_balance_is_insufficient_balance(ledger: LedgerTenant) -> None:
    member = await ledger.member("carol")
    await ledger.earn(member, 40)

    async def spend(conn: asyncpg.Connection) -> None:
        await post_entry(
            conn, ledger.tenant_id, kind="redeem", idempotency_key="r1", legs=[Leg(member, 41), Leg(PROGRAM, -41)]
        )

    refusal = await _refusal(ledger, spend)
    assert (refusal.type, refusal.status) == ("insufficient-balance", 409)
    assert await _balance(ledger, member) == 40


@pytest.mark.parametrize(
    ("legs", "kind"),
    [
        ([Leg(PROGRAM, 10)], "unbalanced-entry"),
        ([Leg(PROGRAM, 10), Leg("member:x:points", -9)], "unbalanced-entry"),
        ([Leg(PROGRAM, 0), Leg("member:x:points", 0)], "invalid-amount"),
        ([Leg(PROGRAM, 2**60), Leg("member:x:points", -(2**60))], "invalid-amount"),
        ([Leg(PROGRAM, 10), Leg("member:nobody:points", -10)], "account-not-found"),
    ],
)
async def test_malformed_entries_are_refused(ledger: LedgerTenant, legs: list[Leg], kind: str) -> None:
    await ledger.member("x")

    async def post(conn: asyncpg.Connection) -> None:
        await post_entry(conn, ledger.tenant_id, kind="earn", idempotency_key="bad", legs=legs)

    assert (await _refusal(ledger, post)).type == kind


async def test_reversal_negates_leg_for_leg_once(ledger: LedgerTenant) -> None:
    member = await ledger.member("dan")
    entry_id = await ledger.earn(member, 70)
    async with ledger.pool.acquire() as conn:
        async with conn.transaction():
            reversal = await reverse_entry(conn, ledger.tenant_id, entry_id, idempotency_key="refund-1")
        async with conn.transaction():
            replay = await reverse_entry(conn, ledger.tenant_id, entry_id, idempotency_key="refund-1")
        original, negation = (
            await get_entry(conn, ledger.tenant_id, entry_id),
            await get_entry(conn, ledger.tenant_id, reversal.entry_id),
        )
    assert replay.entry_id == reversal.entry_id and replay.replayed
    assert negation.reverses_entry_id == entry_id
    assert [(leg.account, -leg.amount) for leg in original.legs] == [(leg.account, leg.amount) for leg in negation.legs]
    assert await _balance(ledger, member) == 0

    async def again(conn: asyncpg.Connection) -> None:
        await reverse_entry(conn, ledger.tenant_id, entry_id, idempotency_key="refund-2")

    async def reverse_reversal(conn: asyncpg.Connection) -> None:
        await reverse_entry(conn, ledger.tenant_id, reversal.entry_id, idempotency_key="refund-3")

    assert (await _refusal(ledger, again)).type == "already-reversed"
    assert (await _refusal(ledger, reverse_reversal)).type == "reversal-not-reversible"


async def test_reversal_of_spent_points_is_refused_by_the_overdraft_check(ledger: LedgerTenant) -> None:
    member = await ledger.member("erin")
    entry_id = await ledger.earn(member, 70)
    await _post(ledger, "spend", [Leg(member, 50), Leg(PROGRAM, -50)], kind="redeem")

    async def reverse(conn: asyncpg.Connection) -> None:
        await reverse_entry(conn, ledger.tenant_id, entry_id, idempotency_key="refund")

    assert (await _refusal(ledger, reverse)).type == "insufficient-balance"
    assert await _balance(ledger, member) == 20


async def test_unknown_entry_is_404(ledger: LedgerTenant) -> None:
    async def reverse(conn: asyncpg.Connection) -> None:
        await reverse_entry(conn, ledger.tenant_id, 10**12, idempotency_key="x")

    refusal = await _refusal(ledger, reverse)
    assert (refusal.type, refusal.status) == ("entry-not-found", 404)


async def test_open_account_is_idempotent_and_refuses_another_shape(ledger: LedgerTenant) -> None:
    async with ledger.pool.acquire() as conn:
        first = await open_account(conn, ledger.tenant_id, "member:f:points", "PTS", owner_id="f")
        again = await open_account(conn, ledger.tenant_id, "member:f:points", "PTS", owner_id="f")
        assert first == again
        with pytest.raises(DomainError) as caught:
            await open_account(conn, ledger.tenant_id, "member:f:points", "CNY", owner_id="f")
    assert caught.value.type == "account-conflict"


async def test_history_is_newest_first_with_balance_after_each_line(ledger: LedgerTenant) -> None:
    member = await ledger.member("gus")
    for amount in (10, 20, 30):
        await ledger.earn(member, amount)
    await _post(ledger, "spend", [Leg(member, 15), Leg(PROGRAM, -15)], kind="redeem")
    async with ledger.pool.acquire() as conn:
        lines = await history(conn, ledger.tenant_id, member)
        page1 = await history(conn, ledger.tenant_id, member, limit=2)
        page2 = await history(conn, ledger.tenant_id, member, limit=2, before=(page1[-1].entry_id, page1[-1].leg))
    assert [(line.kind, line.amount, line.balance_after) for line in lines] == [
        ("redeem", -15, 45),
        ("earn", 30, 60),
        ("earn", 20, 30),
        ("earn", 10, 10),
    ]
    assert page1 + page2 == lines
    assert lines[0].reason == "test"


async def test_verify_passes_on_a_healthy_tenant(ledger: LedgerTenant) -> None:
    member = await ledger.member("hal")
    entry_id = await ledger.earn(member, 10)
    async with ledger.pool.acquire() as conn:
        async with conn.transaction():
            await reverse_entry(conn, ledger.tenant_id, entry_id, idempotency_key="rev")
        report = await verify(conn, ledger.tenant_id)
    assert report.ok, report.violations
    assert "1-entry-balances" in report.checks and "6-reversal-negates-original" in report.checks
