"""Finance reads of the journal (DESIGN §7): trial balance and account statements as of any past time.

Every figure is summed from postings, never from the accounts' counters, so any past time works. Time
is one of two clocks of an entry, chosen per call (`basis`):
- `created` (default): when the entry was written. The journal is append-only, so a report as of a
  past time gives the same numbers however much is posted later: the reproducible clock.
- `effective`: the business time, which a caller may back-date; a later back-dated entry changes an
  earlier report, as finance expects of a restatement.
"As of T" includes T; windows `[from, to)` are half-open, so a statement's closing balance for `to`
equals a trial balance as of the instant before `to`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from shared.errors import DomainError
from shared.pagination import encode_cursor

__all__ = [
    "AccountTotals",
    "AssetTotals",
    "Basis",
    "Statement",
    "StatementLine",
    "TrialBalance",
    "asset_totals",
    "statement",
    "trial_balance",
]

Basis = Literal["created", "effective"]
_MAX_STATEMENT_LIMIT = 1000


class AccountTotals(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    asset: str
    owner_id: str | None
    normal_side: Literal["debit", "credit"]
    debits: int
    credits: int
    balance: int  # on the normal side: a credit-normal account counts credits as positive


class AssetTotals(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    debits: int
    credits: int
    balanced: bool  # Σ debits = Σ credits (DESIGN §4.3 item 2)


class TrialBalance(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    basis: Basis
    generated_at: datetime
    accounts: list[AccountTotals]
    totals: list[AssetTotals]


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    leg: int
    kind: str
    effective_at: datetime
    created_at: datetime
    reason: str | None
    source_ref: str | None
    debit: int
    credit: int
    balance_after: int  # on the account's normal side


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    asset: str
    normal_side: Literal["debit", "credit"]
    basis: Basis
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    opening_balance: int  # everything before `from`
    debits: int  # the whole window's, not only this page's
    credits: int
    closing_balance: int  # opening + window, on every page
    lines: list[StatementLine]
    next_cursor: str | None = None


# `$2` is the cut-off (inclusive), `$3` true for the effective clock. Accounts without postings by then
# are left out. Grouped by account id, then named: one pass over the tenant's postings.
_TRIAL_BALANCE = """
WITH sums AS (
    SELECT p.account_id,
           coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0)::bigint AS debits,
           coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0)::bigint AS credits
      FROM postings p
      JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
     WHERE p.tenant_id = $1
       AND CASE WHEN $3::boolean THEN e.effective_at ELSE e.created_at END <= $2
     GROUP BY p.account_id
)
SELECT a.code, a.asset, a.owner_id, a.normal_side, s.debits, s.credits
  FROM sums s JOIN accounts a ON a.tenant_id = $1 AND a.account_id = s.account_id
 ORDER BY a.code
"""

_NOW = "SELECT clock_timestamp()"

_ACCOUNT = "SELECT account_id, code, asset, normal_side FROM accounts WHERE tenant_id = $1 AND code = $2"

# One account's signed sums before `from` ($3) and inside [from, to) ($3, $4); NULL bounds are open.
_STATEMENT_SUMS = """
SELECT coalesce(sum(p.amount) FILTER (WHERE $3::timestamptz IS NOT NULL AND t.at < $3), 0)::bigint AS opening,
       coalesce(sum(p.amount) FILTER (WHERE p.amount > 0 AND ($3::timestamptz IS NULL OR t.at >= $3)), 0)::bigint AS debits,
       coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0 AND ($3::timestamptz IS NULL OR t.at >= $3)), 0)::bigint AS credits,
       coalesce(sum(p.amount) FILTER (WHERE ($3::timestamptz IS NULL OR t.at >= $3)
                                        AND (p.entry_id, p.leg) <= ($6::bigint, $7::int)), 0)::bigint AS before_page
  FROM postings p
  JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
  CROSS JOIN LATERAL (SELECT CASE WHEN $5::boolean THEN e.effective_at ELSE e.created_at END AS at) t
 WHERE p.tenant_id = $1 AND p.account_id = $2
   AND ($4::timestamptz IS NULL OR t.at < $4)
"""

# Lines in (entry id, leg) order after the cursor, inside the window.
_STATEMENT_LINES = """
SELECT p.entry_id, p.leg, p.amount, e.kind, e.effective_at, e.created_at, e.reason, e.source_ref
  FROM postings p
  JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
 WHERE p.tenant_id = $1 AND p.account_id = $2
   AND (p.entry_id, p.leg) > ($6::bigint, $7::int)
   AND ($3::timestamptz IS NULL OR CASE WHEN $5::boolean THEN e.effective_at ELSE e.created_at END >= $3)
   AND ($4::timestamptz IS NULL OR CASE WHEN $5::boolean THEN e.effective_at ELSE e.created_at END < $4)
 ORDER BY p.entry_id, p.leg
 LIMIT $8
"""


def _on_normal_side(normal_side: str, signed: int) -> int:
    return -signed if normal_side == "credit" else signed


async def trial_balance(
    conn: asyncpg.Connection, tenant_id: str, as_of: datetime | None, basis: Basis = "created"
) -> TrialBalance:
    """Every account's totals as of a time (default now) and the per-asset proof Σ debits = Σ credits."""
    generated_at: datetime = await conn.fetchval(_NOW)
    cut = as_of or generated_at
    rows = await conn.fetch(_TRIAL_BALANCE, tenant_id, cut, basis == "effective")
    accounts = [
        AccountTotals(
            code=r["code"],
            asset=r["asset"],
            owner_id=r["owner_id"],
            normal_side=r["normal_side"],
            debits=r["debits"],
            credits=r["credits"],
            balance=_on_normal_side(r["normal_side"], r["debits"] - r["credits"]),
        )
        for r in rows
    ]
    return TrialBalance(
        as_of=cut, basis=basis, generated_at=generated_at, accounts=accounts, totals=asset_totals(accounts)
    )


def asset_totals(accounts: list[AccountTotals]) -> list[AssetTotals]:
    sums: dict[str, list[int]] = {}
    for account in accounts:
        pair = sums.setdefault(account.asset, [0, 0])
        pair[0] += account.debits
        pair[1] += account.credits
    return [AssetTotals(asset=a, debits=d, credits=c, balanced=d == c) for a, (d, c) in sorted(sums.items())]


async def statement(
    conn: asyncpg.Connection,
    tenant_id: str,
    code: str,
    *,
    from_: datetime | None,
    to: datetime | None,
    basis: Basis = "created",
    limit: int = 100,
    after: tuple[int, int] | None = None,
) -> Statement:
    """Opening balance, a page of lines with the running balance, closing balance; `after` is (entry_id, leg).

    Run it in one repeatable-read transaction when paging must agree with the totals under writes.
    """
    if from_ is not None and to is not None and from_ > to:
        raise DomainError("invalid-window", 422, "`from` must not be after `to`")
    account = await conn.fetchrow(_ACCOUNT, tenant_id, code)
    if account is None:
        raise DomainError("account-not-found", 404, f"account {code} does not exist")
    limit = max(1, min(limit, _MAX_STATEMENT_LIMIT))
    entry_id, leg = after if after is not None else (0, 0)
    effective = basis == "effective"
    args = (tenant_id, account["account_id"], from_, to, effective, entry_id, leg)
    sums = await conn.fetchrow(_STATEMENT_SUMS, *args)
    rows = await conn.fetch(_STATEMENT_LINES, *args, limit + 1)
    side = account["normal_side"]
    running = sums["opening"] + (sums["before_page"] if after is not None else 0)
    lines = []
    for r in rows[:limit]:
        running += r["amount"]
        lines.append(
            StatementLine(
                entry_id=r["entry_id"],
                leg=r["leg"],
                kind=r["kind"],
                effective_at=r["effective_at"],
                created_at=r["created_at"],
                reason=r["reason"],
                source_ref=r["source_ref"],
                debit=max(r["amount"], 0),
                credit=max(-r["amount"], 0),
                balance_after=_on_normal_side(side, running),
            )
        )
    next_cursor = encode_cursor([lines[-1].entry_id, lines[-1].leg]) if len(rows) > limit else None
    closing = sums["opening"] + sums["debits"] - sums["credits"]
    return Statement(
        code=code,
        asset=account["asset"],
        normal_side=side,
        basis=basis,
        from_=from_,
        to=to,
        opening_balance=_on_normal_side(side, sums["opening"]),
        debits=sums["debits"],
        credits=sums["credits"],
        closing_balance=_on_normal_side(side, closing),
        lines=lines,
        next_cursor=next_cursor,
    )
