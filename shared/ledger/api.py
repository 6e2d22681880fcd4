"""The ledger's Python API: open accounts, post and reverse entries, read balances and history.

Every function takes a connection that is already inside the caller's transaction; none commits.
Refusals by PostgreSQL surface as `DomainError`s (e.g. `insufficient-balance`); the caller's
transaction is then aborted and must be rolled back (or the savepoint released by the caller).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from shared.errors import DomainError, problem_from_database_error
from shared.observability import LEDGER_ENTRIES

__all__ = [
    "MAX_AMOUNT",
    "Account",
    "Balance",
    "HistoryLine",
    "Leg",
    "PostedEntry",
    "balances",
    "get_entry",
    "history",
    "legs_hash",
    "open_account",
    "post_entry",
    "reverse_entry",
]

NormalSide = Literal["debit", "credit"]
MAX_AMOUNT = 2**53  # amounts beyond JSON's safe integers are refused before they reach SQL


class Leg(msgspec.Struct, frozen=True):
    """One posting: debit > 0, credit < 0."""

    account: str
    amount: int


class Account(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    code: str
    asset: str
    owner_id: str | None
    normal_side: NormalSide
    no_overdraft: bool
    track_balance: bool


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    asset: str
    debits_posted: int
    credits_posted: int
    balance: int  # on the account's normal side: credit-normal accounts count credits as positive


class PostedEntry(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    replayed: bool


class EntryLeg(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    asset: str
    amount: int


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    kind: str
    idempotency_key: str
    reverses_entry_id: int | None
    effective_at: datetime
    created_at: datetime
    reason: str | None
    source_ref: str | None
    metadata: Any
    legs: list[EntryLeg]


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    leg: int
    kind: str
    reason: str | None
    source_ref: str | None
    effective_at: datetime
    amount: int  # on the account's normal side
    balance_after: int


_OPEN_ACCOUNT = """
WITH ins AS (
    INSERT INTO accounts (tenant_id, code, asset, owner_id, normal_side,
                          debits_must_not_exceed_credits, credits_must_not_exceed_debits, track_balance)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (tenant_id, code) DO NOTHING
    RETURNING account_id, code, asset, owner_id, normal_side,
              debits_must_not_exceed_credits OR credits_must_not_exceed_debits AS no_overdraft, track_balance
)
SELECT * FROM ins
"""

_GET_ACCOUNT = """
SELECT account_id, code, asset, owner_id, normal_side,
       debits_must_not_exceed_credits OR credits_must_not_exceed_debits AS no_overdraft, track_balance
  FROM accounts WHERE tenant_id = $1 AND code = $2
"""

_POST_ENTRY = "SELECT entry_id, replayed FROM post_entry($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

_ENTRY_LEGS = """
SELECT e.entry_id, e.kind, e.idempotency_key, e.reverses_entry_id, e.effective_at, e.created_at,
       e.reason, e.source_ref, e.metadata,
       array_agg(a.code ORDER BY p.leg) AS codes, array_agg(p.asset ORDER BY p.leg) AS assets,
       array_agg(p.amount ORDER BY p.leg) AS amounts
  FROM entries e
  JOIN postings p ON p.tenant_id = e.tenant_id AND p.entry_id = e.entry_id
  JOIN accounts a ON a.tenant_id = p.tenant_id AND a.account_id = p.account_id
 WHERE e.tenant_id = $1 AND e.entry_id = $2
 GROUP BY e.tenant_id, e.entry_id
"""

_BALANCES = """
SELECT a.code, a.asset, a.normal_side, a.track_balance, a.debits_posted, a.credits_posted,
       CASE WHEN a.track_balance THEN NULL ELSE
           (SELECT coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0)::bigint
              FROM postings p WHERE p.tenant_id = a.tenant_id AND p.account_id = a.account_id) END AS derived_debits,
       CASE WHEN a.track_balance THEN NULL ELSE
           (SELECT coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0)::bigint
              FROM postings p WHERE p.tenant_id = a.tenant_id AND p.account_id = a.account_id) END AS derived_credits
  FROM accounts a
 WHERE a.tenant_id = $1 AND a.code = ANY($2::text[])
"""

# Newest first; balance after each line = the sum up to the page's newest line, minus what follows it.
_HISTORY = """
WITH acct AS (
    SELECT account_id, normal_side FROM accounts WHERE tenant_id = $1 AND code = $2
), page AS (
    SELECT p.entry_id, p.leg, p.amount, e.kind, e.reason, e.source_ref, e.effective_at
      FROM postings p
      JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
     WHERE p.tenant_id = $1 AND p.account_id = (SELECT account_id FROM acct)
       AND (p.entry_id, p.leg) < ($3::bigint, $4::int)
     ORDER BY p.entry_id DESC, p.leg DESC
     LIMIT $5
), upto AS (
    SELECT coalesce(sum(q.amount), 0)::bigint AS total
      FROM postings q
     WHERE q.tenant_id = $1 AND q.account_id = (SELECT account_id FROM acct)
       AND (q.entry_id, q.leg) <= (SELECT entry_id, leg FROM page ORDER BY entry_id DESC, leg DESC LIMIT 1)
)
SELECT page.entry_id, page.leg, page.kind, page.reason, page.source_ref, page.effective_at,
       page.amount, (SELECT normal_side FROM acct) AS normal_side,
       (upto.total - coalesce(sum(page.amount) OVER (ORDER BY page.entry_id DESC, page.leg DESC
                                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::bigint AS running
  FROM page, upto
 ORDER BY page.entry_id DESC, page.leg DESC
"""

_encode = msgspec.json.Encoder().encode


def legs_hash(kind: str, legs: list[Leg], reverses: int | None = None) -> bytes:
    """What makes two posts with one idempotency key the same entry."""
    return hashlib.sha256(_encode([kind, reverses, [[leg.account, leg.amount] for leg in legs]])).digest()


def _refusal(exc: asyncpg.PostgresError) -> Exception:
    return problem_from_database_error(exc) or exc


async def open_account(
    conn: asyncpg.Connection,
    tenant_id: str,
    code: str,
    asset: str,
    *,
    owner_id: str | None = None,
    normal_side: NormalSide = "credit",
    no_overdraft: bool = True,
    tracked: bool = True,
) -> Account:
    """Open an account, or return the one with this code when its shape matches (409 otherwise)."""
    debit_limit = no_overdraft and normal_side == "credit"
    credit_limit = no_overdraft and normal_side == "debit"
    args = (tenant_id, code, asset, owner_id, normal_side, debit_limit, credit_limit, tracked)
    try:
        row = await conn.fetchrow(_OPEN_ACCOUNT, *args)
    except asyncpg.PostgresError as exc:
        raise _refusal(exc) from exc
    if row is None:  # it exists: a fresh statement sees a row a concurrent opener just committed
        row = await conn.fetchrow(_GET_ACCOUNT, tenant_id, code)
    assert row is not None
    account = Account(**dict(row))
    if (account.asset, account.normal_side, account.no_overdraft, account.track_balance, account.owner_id) != (
        asset,
        normal_side,
        no_overdraft,
        tracked,
        owner_id,
    ):
        raise DomainError("account-conflict", 409, f"account {code} exists with another asset, side or limit")
    return account


def _check_legs(legs: list[Leg]) -> None:
    if len(legs) < 2:
        raise DomainError("unbalanced-entry", 422, "an entry needs at least two legs")
    if any(leg.amount == 0 or abs(leg.amount) > MAX_AMOUNT for leg in legs):
        raise DomainError("invalid-amount", 422, f"every leg moves a non-zero amount of at most {MAX_AMOUNT}")
    if sum(leg.amount for leg in legs) != 0:
        raise DomainError("unbalanced-entry", 422, "the legs of an entry must sum to zero")


async def post_entry(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    kind: str,
    idempotency_key: str,
    legs: list[Leg],
    effective_at: datetime | None = None,
    reason: str | None = None,
    source_ref: str | None = None,
    metadata: Any = None,
) -> PostedEntry:
    """Post one balanced entry; the same key with the same legs returns the first entry (a replay)."""
    _check_legs(legs)
    return await _post(conn, tenant_id, kind, idempotency_key, legs, effective_at, reason, source_ref, metadata, None)


async def _post(
    conn: asyncpg.Connection,
    tenant_id: str,
    kind: str,
    key: str,
    legs: list[Leg],
    effective_at: datetime | None,
    reason: str | None,
    source_ref: str | None,
    metadata: Any,
    reverses: int | None,
) -> PostedEntry:
    try:
        row = await conn.fetchrow(
            _POST_ENTRY,
            tenant_id,
            kind,
            key,
            legs_hash(kind, legs, reverses),
            [leg.account for leg in legs],
            [leg.amount for leg in legs],
            effective_at,
            reason,
            source_ref,
            metadata,
            reverses,
        )
    except asyncpg.PostgresError as exc:
        raise _refusal(exc) from exc
    assert row is not None
    if not row[1]:
        LEDGER_ENTRIES.labels(kind).inc()
    return PostedEntry(entry_id=row[0], replayed=row[1])


async def get_entry(conn: asyncpg.Connection, tenant_id: str, entry_id: int) -> Entry:
    row = await conn.fetchrow(_ENTRY_LEGS, tenant_id, entry_id)
    if row is None:
        raise DomainError("entry-not-found", 404, f"entry {entry_id} does not exist")
    legs = [
        EntryLeg(account=c, asset=a, amount=n)
        for c, a, n in zip(row["codes"], row["assets"], row["amounts"], strict=True)
    ]
    fields = {
        k: row[k]
        for k in (
            "entry_id",
            "kind",
            "idempotency_key",
            "reverses_entry_id",
            "effective_at",
            "created_at",
            "reason",
            "source_ref",
            "metadata",
        )
    }
    return Entry(**fields, legs=legs)


async def reverse_entry(
    conn: asyncpg.Connection,
    tenant_id: str,
    entry_id: int,
    *,
    idempotency_key: str,
    kind: str = "reversal",
    reason: str | None = None,
    source_ref: str | None = None,
    effective_at: datetime | None = None,
) -> PostedEntry:
    """Negate an entry leg for leg. An entry is reversed at most once (409 `already-reversed`)."""
    original = await get_entry(conn, tenant_id, entry_id)
    if original.reverses_entry_id is not None:
        raise DomainError("reversal-not-reversible", 422, f"entry {entry_id} is itself a reversal")
    legs = [Leg(leg.account, -leg.amount) for leg in original.legs]
    return await _post(conn, tenant_id, kind, idempotency_key, legs, effective_at, reason, source_ref, None, entry_id)


async def balances(conn: asyncpg.Connection, tenant_id: str, codes: list[str]) -> dict[str, Balance]:
    """Balances by code; untracked (hot) accounts are summed from their postings."""
    result: dict[str, Balance] = {}
    for row in await conn.fetch(_BALANCES, tenant_id, codes):
        debits = row["debits_posted"] if row["track_balance"] else row["derived_debits"]
        credits = row["credits_posted"] if row["track_balance"] else row["derived_credits"]
        balance = credits - debits if row["normal_side"] == "credit" else debits - credits
        result[row["code"]] = Balance(
            code=row["code"], asset=row["asset"], debits_posted=debits, credits_posted=credits, balance=balance
        )
    return result


async def history(
    conn: asyncpg.Connection,
    tenant_id: str,
    code: str,
    *,
    limit: int = 50,
    before: tuple[int, int] | None = None,
) -> list[HistoryLine]:
    """An account's postings newest first with the balance after each; `before` is (entry_id, leg)."""
    entry_id, leg = before if before is not None else (2**63 - 1, 32767)
    rows = await conn.fetch(_HISTORY, tenant_id, code, entry_id, leg, limit)
    lines = []
    for row in rows:
        sign = -1 if row["normal_side"] == "credit" else 1
        lines.append(
            HistoryLine(
                entry_id=row["entry_id"],
                leg=row["leg"],
                kind=row["kind"],
                reason=row["reason"],
                source_ref=row["source_ref"],
                effective_at=row["effective_at"],
                amount=sign * row["amount"],
                balance_after=sign * row["running"],
            )
        )
    return lines
