"""PostgreSQL itself refuses what would break the ledger, whatever SQL a client sends (§4.1)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.shared.ledger.conftest import PROGRAM, LedgerTenant

ENTRY = """
INSERT INTO entries (tenant_id, kind, idempotency_key, legs_hash) VALUES ($1, 'raw', $2, '\\x00')
RETURNING entry_id
"""
LEG = """
INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
SELECT $1, $2, $3, account_id, $5, $6 FROM accounts WHERE tenant_id = $1 AND code = $4
"""


async def _raw_entry(conn: asyncpg.Connection, tenant: str, key: str, legs: list[tuple[str, str, int]]) -> None:
    """Header plus legs in one INSERT statement, as a careless client would write it."""
    entry_id = await conn.fetchval(ENTRY, tenant, key)
    await conn.execute(
        """
        INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
        SELECT $1, $2, l.ord, a.account_id, l.asset, l.amount
          FROM unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS l(code, asset, amount, ord)
          JOIN accounts a ON a.tenant_id = $1 AND a.code = l.code
        """,
        tenant,
        entry_id,
        [code for code, _, _ in legs],
        [asset for _, asset, _ in legs],
        [amount for _, _, amount in legs],
    )


async def _refused(ledger: LedgerTenant, sql_steps, error: type[Exception], match: str) -> None:
    async with ledger.pool.acquire() as conn:
        with pytest.raises(error, match=match):
            async with conn.transaction():
                await sql_steps(conn)


async def test_raw_balanced_entry_is_accepted_and_moves_the_balance(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")
    async with ledger.pool.acquire() as conn:
        async with conn.transaction():
            await _raw_entry(conn, ledger.tenant_id, "ok", [(PROGRAM, "PTS", 30), (member, "PTS", -30)])
        credits = await conn.fetchval(
            "SELECT credits_posted FROM accounts WHERE tenant_id = $1 AND code = $2", ledger.tenant_id, member
        )
    assert credits == 30


async def test_unbalanced_entry_is_refused(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")

    async def steps(conn: asyncpg.Connection) -> None:
        await _raw_entry(conn, ledger.tenant_id, "unbalanced", [(PROGRAM, "PTS", 30), (member, "PTS", -29)])

    await _refused(ledger, steps, asyncpg.CheckViolationError, "unbalanced")


async def test_one_legged_entry_is_refused(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")

    async def steps(conn: asyncpg.Connection) -> None:
        await _raw_entry(conn, ledger.tenant_id, "one-leg", [(member, "PTS", -30)])

    await _refused(ledger, steps, asyncpg.CheckViolationError, "fewer than two legs")


async def test_header_without_legs_is_refused_at_commit(ledger: LedgerTenant) -> None:
    async def steps(conn: asyncpg.Connection) -> None:
        await conn.fetchval(ENTRY, ledger.tenant_id, "no-legs")

    await _refused(ledger, steps, asyncpg.CheckViolationError, "has no legs")


async def test_legs_split_over_two_statements_are_refused(ledger: LedgerTenant) -> None:
    await ledger.member("m1")

    async def steps(conn: asyncpg.Connection) -> None:
        entry_id = await conn.fetchval(ENTRY, ledger.tenant_id, "split")
        await conn.execute(LEG, ledger.tenant_id, entry_id, 1, PROGRAM, "PTS", 30)

    await _refused(ledger, steps, asyncpg.CheckViolationError, "fewer than two legs")


async def test_balanced_in_total_but_not_per_asset_is_refused(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")
    wallet = await ledger.member("m1-cash", "CNY")

    async def steps(conn: asyncpg.Connection) -> None:
        await _raw_entry(conn, ledger.tenant_id, "cross-asset", [(PROGRAM, "PTS", 30), (wallet, "CNY", -30)])

    await _refused(ledger, steps, asyncpg.CheckViolationError, "unbalanced")
    assert member


async def test_leg_in_the_wrong_asset_is_refused(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")

    async def steps(conn: asyncpg.Connection) -> None:
        await _raw_entry(conn, ledger.tenant_id, "wrong-asset", [(PROGRAM, "CNY", 30), (member, "CNY", -30)])

    await _refused(ledger, steps, asyncpg.ForeignKeyViolationError, "postings_leg_asset_is_account_asset")


async def test_legs_added_to_a_committed_entry_are_refused(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")
    entry_id = await ledger.earn(member, 50)

    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """
            INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
            SELECT $1, $2, 10 + row_number() OVER (), account_id, 'PTS', CASE code WHEN $3 THEN 5 ELSE -5 END
              FROM accounts WHERE tenant_id = $1 AND code IN ($3, $4)
            """,
            ledger.tenant_id,
            entry_id,
            PROGRAM,
            member,
        )

    await _refused(ledger, steps, asyncpg.CheckViolationError, "committed earlier")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = amount * 2 WHERE tenant_id = $1",
        "DELETE FROM postings WHERE tenant_id = $1",
        "UPDATE entries SET kind = 'forged' WHERE tenant_id = $1",
        "DELETE FROM entries WHERE tenant_id = $1",
    ],
)
async def test_journal_rows_cannot_be_changed_or_deleted(ledger: LedgerTenant, statement: str) -> None:
    member = await ledger.member("m1")
    await ledger.earn(member, 50)

    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute(statement, ledger.tenant_id)

    await _refused(ledger, steps, asyncpg.InsufficientPrivilegeError, "append-only")


@pytest.mark.parametrize("table", ["postings", "entries", "accounts"])
async def test_journal_cannot_be_truncated(ledger: LedgerTenant, table: str) -> None:
    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute(f"TRUNCATE {table} CASCADE")

    await _refused(ledger, steps, asyncpg.InsufficientPrivilegeError, "append-only")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE accounts SET credits_posted = credits_posted + 1000 WHERE tenant_id = $1 AND code = $2",
        "UPDATE accounts SET debits_posted = 0, credits_posted = 0 WHERE tenant_id = $1 AND code = $2",
        "UPDATE accounts SET version = version + 1 WHERE tenant_id = $1 AND code = $2",
    ],
)
async def test_balance_cannot_be_updated_directly(ledger: LedgerTenant, statement: str) -> None:
    member = await ledger.member("m1")
    await ledger.earn(member, 50)

    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute(statement, ledger.tenant_id, member)

    await _refused(ledger, steps, asyncpg.InsufficientPrivilegeError, "only through postings")


async def test_account_asset_cannot_change_nor_account_be_deleted(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")

    async def change_asset(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE accounts SET asset = 'CNY' WHERE tenant_id = $1 AND code = $2", ledger.tenant_id, member
        )

    async def delete(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM accounts WHERE tenant_id = $1 AND code = $2", ledger.tenant_id, member)

    await _refused(ledger, change_asset, asyncpg.InsufficientPrivilegeError, "immutable")
    await _refused(ledger, delete, asyncpg.InsufficientPrivilegeError, "never deleted")


async def test_overdraft_is_refused_by_the_account_check(ledger: LedgerTenant) -> None:
    member = await ledger.member("m1")
    await ledger.earn(member, 50)

    async def steps(conn: asyncpg.Connection) -> None:
        await _raw_entry(conn, ledger.tenant_id, "overdraft", [(member, "PTS", 51), (PROGRAM, "PTS", -51)])

    await _refused(ledger, steps, asyncpg.CheckViolationError, "accounts_no_overdraft_debit")
    async with ledger.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT debits_posted, credits_posted FROM accounts WHERE tenant_id = $1 AND code = $2",
            ledger.tenant_id,
            member,
        )
    assert (row["debits_posted"], row["credits_posted"]) == (0, 50)


async def test_untracked_account_cannot_carry_a_limit_or_counters(ledger: LedgerTenant) -> None:
    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO accounts (tenant_id, code, asset, track_balance, debits_must_not_exceed_credits)
               VALUES ($1, 'program:limited', 'PTS', false, true)""",
            ledger.tenant_id,
        )

    await _refused(ledger, steps, asyncpg.CheckViolationError, "accounts_limit_needs_tracking")


async def test_a_leg_cannot_cross_tenants(ledger: LedgerTenant, loyalty_pool: asyncpg.Pool) -> None:
    member = await ledger.member("m1")

    async def steps(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1 || 'b', 'b')", ledger.tenant_id)
        entry_id = await conn.fetchval(ENTRY, ledger.tenant_id + "b", "cross")
        # The account id of tenant A used under tenant B's entry: the composite key has no such row.
        await conn.execute(
            """
            INSERT INTO postings (tenant_id, entry_id, leg, account_id, asset, amount)
            SELECT $2, $3, row_number() OVER (), account_id, 'PTS', CASE code WHEN $4 THEN 5 ELSE -5 END
              FROM accounts WHERE tenant_id = $1 AND code IN ($4, $5)
            """,
            ledger.tenant_id,
            ledger.tenant_id + "b",
            entry_id,
            PROGRAM,
            member,
        )

    await _refused(ledger, steps, asyncpg.ForeignKeyViolationError, "postings_leg_asset_is_account_asset")
