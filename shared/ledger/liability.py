"""The liability roll-forward (DESIGN §7): what the programme owes its members, opening to closing.

Generic machinery; each service describes its own liability in a `LiabilitySpec` (the member account
roles that make up the liability, and the one table mapping entry kinds to roll-forward lines).

- The liability is Σ over the member accounts of the spec's categories, each on its normal side and
  counted with the category's sign (a member's debt is a receivable: sign −1). Because every entry
  balances, it also equals the programme (counter) accounts' side, so every line is measured twice.
- Every posting of the asset in [`from`, `to`) belongs to the line its entry's `kind` maps to; a kind
  the table does not know goes to `other`, so opening + Σ lines = closing holds for every category and
  for the total whatever is posted. A healthy ledger has `other` = 0.
- Every figure is summed from postings, never from counters, on the `basis` clock of
  `shared.ledger.reports` (default `created`: a past window gives the same numbers forever).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from shared.errors import DomainError
from shared.ledger.reports import Basis

__all__ = [
    "AGEING_BUCKETS",
    "OTHER",
    "AgeingBucket",
    "Category",
    "CategoryRollForward",
    "LiabilityReport",
    "LiabilitySpec",
    "LineDef",
    "LineTotal",
    "liability_report",
]

OTHER = "other"

# Payable ageing in whole days since the amount became available: (label, min days, max days or None).
AGEING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-7", 0, 7),
    ("8-30", 8, 30),
    ("31-90", 31, 90),
    (">90", 91, None),
)


@dataclass(frozen=True)
class Category:
    """A member account role (`member:{id}:{role}`) that is part of the liability, and its sign in it."""

    role: str
    sign: Literal[1, -1] = 1


@dataclass(frozen=True)
class LineDef:
    """A roll-forward line: the kinds it takes, and its sign in `opening + Σ sign × amount = closing`.

    `sign` 0 marks a transfer between categories (the total does not move; the categories do)."""

    name: str
    sign: Literal[1, -1, 0]
    kinds: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class LiabilitySpec:
    """A service's liability: its categories, its kind → line table, and what else it reports."""

    name: str  # what is owed, e.g. "points", "commission"
    asset: Callable[[asyncpg.Connection, str], Awaitable[str]]
    categories: tuple[Category, ...]
    lines: tuple[LineDef, ...]
    breakage: tuple[str, str] | None = None  # (numerator line, denominator line) over the window
    ageing_role: str | None = None  # the category whose closing balance is aged (FIFO)
    # named parts of a line, read off its counter side: (name, line, programme account code); the
    # figure is that account's credits minus debits on the line in the window (e.g. fees of payouts)
    memos: tuple[tuple[str, str, str], ...] = ()
    line_of_kind: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table: dict[str, str] = {}
        for line in self.lines:
            for kind in line.kinds:
                if kind in table:
                    raise ValueError(f"kind {kind} is mapped to both {table[kind]} and {line.name}")
                table[kind] = line.name
        object.__setattr__(self, "line_of_kind", table)


class CategoryRollForward(msgspec.Struct, frozen=True, kw_only=True):
    category: str  # the member account role, e.g. points_pending
    sign: int  # +1: owed to members; −1: owed by members (debt)
    opening: int  # Σ of the role's accounts on their normal side before `from`
    movements: dict[str, int]  # line → change of the role's balance in the window
    closing: int  # opening + Σ movements


class LineTotal(msgspec.Struct, frozen=True, kw_only=True):
    line: str
    sign: int  # +1 adds to the liability, −1 takes from it, 0 a transfer between categories
    amount: int  # in the line's direction: sign × change; for a transfer, what it moved
    change: int  # signed change of the liability
    kinds: list[str]  # the kinds seen on this line in the window
    counter_accounts: dict[str, int]  # the other side: programme accounts' postings, debit > 0


class AgeingBucket(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    min_days: int
    max_days: int | None
    amount: int


class LiabilityReport(msgspec.Struct, frozen=True, kw_only=True):
    liability: str  # "points" or "commission"
    asset: str
    basis: Basis
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    generated_at: datetime
    opening: int
    closing: int
    lines: list[LineTotal]  # the spec's lines in order, then `other`
    categories: list[CategoryRollForward]
    other: int  # the change no line of the table explains (0 on a healthy ledger)
    memos: dict[str, int]  # named parts of lines (see the service's spec), credits positive
    breakage_rate: float | None  # expired / issued over the window; null without issuance
    ageing: list[AgeingBucket] | None  # the closing balance of the aged category, by age (FIFO)
    ages_as_of: datetime | None  # the time ages are measured to: `to`, or `generated_at`


# One pass over the asset's postings up to `to` ($4), grouped by kind and account role: member
# accounts by their role (`member:{owner}:{role}`), the others by code. $3 splits before/inside.
_SUMS = """
SELECT e.kind, r.role, r.member, a.normal_side,
       coalesce(sum(p.amount) FILTER (WHERE $3::timestamptz IS NOT NULL AND t.at < $3), 0)::bigint AS before,
       coalesce(sum(p.amount) FILTER (WHERE $3::timestamptz IS NULL OR t.at >= $3), 0)::bigint AS inside
  FROM postings p
  JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
  JOIN accounts a ON a.tenant_id = p.tenant_id AND a.account_id = p.account_id
  CROSS JOIN LATERAL (SELECT CASE WHEN $5::boolean THEN e.effective_at ELSE e.created_at END AS at) t
  CROSS JOIN LATERAL (
      SELECT a.owner_id IS NOT NULL AND starts_with(a.code, 'member:' || a.owner_id || ':') AS member) m
  CROSS JOIN LATERAL (
      SELECT m.member,
             CASE WHEN m.member THEN substr(a.code, length(a.owner_id) + 9) ELSE a.code END AS role) r
 WHERE p.tenant_id = $1 AND p.asset = $2
   AND ($4::timestamptz IS NULL OR t.at < $4)
 GROUP BY e.kind, r.role, r.member, a.normal_side
"""

# FIFO ageing of one role's closing balance: per account, the credits (inflows) newest first; the
# balance is made of the newest inflows (withdrawals and clawbacks consume the oldest first). Ages
# are whole days from each inflow's effective time to $5, bucketed by $6/$7 (min, max days).
_AGEING = """
WITH moves AS (
    SELECT p.account_id, p.entry_id, p.leg, p.amount, e.effective_at
      FROM postings p
      JOIN entries e ON e.tenant_id = p.tenant_id AND e.entry_id = p.entry_id
      JOIN accounts a ON a.tenant_id = p.tenant_id AND a.account_id = p.account_id
     WHERE p.tenant_id = $1 AND p.asset = $2
       AND a.owner_id IS NOT NULL AND a.code = 'member:' || a.owner_id || ':' || $3
       AND ($4::timestamptz IS NULL OR CASE WHEN $8::boolean THEN e.effective_at ELSE e.created_at END < $4)
), balances AS (
    SELECT account_id, -sum(amount) AS balance FROM moves GROUP BY account_id
), inflows AS (
    SELECT m.account_id, -m.amount AS amount, m.effective_at,
           sum(-m.amount) OVER (PARTITION BY m.account_id ORDER BY m.effective_at DESC, m.entry_id DESC, m.leg DESC)
             AS newer_or_this
      FROM moves m
     WHERE m.amount < 0
), left_over AS (
    SELECT greatest(0, least(i.amount, b.balance - (i.newer_or_this - i.amount))) AS amount,
           greatest(0, floor(extract(epoch FROM ($5::timestamptz - i.effective_at)) / 86400))::bigint AS days
      FROM inflows i JOIN balances b USING (account_id)
     WHERE b.balance > 0
)
SELECT b.i, coalesce(sum(l.amount), 0)::bigint AS amount
  FROM unnest($6::int[], $7::int[]) WITH ORDINALITY AS b(lo, hi, i)
  LEFT JOIN left_over l ON l.days >= b.lo AND (b.hi IS NULL OR l.days <= b.hi)
 GROUP BY b.i
 ORDER BY b.i
"""

_NOW = "SELECT clock_timestamp()"


class _Sums:
    """The grouped sums folded into per-line, per-category figures."""

    def __init__(self, spec: LiabilitySpec) -> None:
        self.spec = spec
        self.signs = {c.role: c.sign for c in spec.categories}
        self.opening = dict.fromkeys(self.signs, 0)
        self.moves: dict[str, dict[str, int]] = {c.role: {} for c in spec.categories}
        self.kinds: dict[str, set[str]] = {}
        self.counter: dict[str, dict[str, int]] = {}

    def add(self, row: asyncpg.Record) -> None:
        role, signed_before, signed_inside = row["role"], row["before"], row["inside"]
        line = self.spec.line_of_kind.get(row["kind"], OTHER)
        if row["member"] and role in self.signs:
            normal = -1 if row["normal_side"] == "credit" else 1
            self.opening[role] += normal * signed_before
            if signed_inside:
                self.moves[role][line] = self.moves[role].get(line, 0) + normal * signed_inside
                self.kinds.setdefault(line, set()).add(row["kind"])
        elif signed_inside:
            accounts = self.counter.setdefault(line, {})
            accounts[role] = accounts.get(role, 0) + signed_inside
            self.kinds.setdefault(line, set()).add(row["kind"])

    def change(self, line: str) -> int:
        return sum(self.signs[role] * moves.get(line, 0) for role, moves in self.moves.items())

    def moved(self, line: str) -> int:
        """What a transfer moved: Σ of the categories it increased (= Σ of those it decreased)."""
        return sum(max(0, self.signs[role] * moves.get(line, 0)) for role, moves in self.moves.items())

    def lines(self) -> list[LineTotal]:
        defs = [*self.spec.lines, LineDef(OTHER, 1, ())]
        totals = []
        for d in defs:
            change = self.change(d.name)
            totals.append(
                LineTotal(
                    line=d.name,
                    sign=d.sign,
                    amount=d.sign * change if d.sign else self.moved(d.name),
                    change=change,
                    kinds=sorted(self.kinds.get(d.name, ())),
                    counter_accounts=dict(sorted(self.counter.get(d.name, {}).items())),
                )
            )
        return totals

    def categories(self) -> list[CategoryRollForward]:
        out = []
        for c in self.spec.categories:
            moves = self.moves[c.role]
            out.append(
                CategoryRollForward(
                    category=c.role,
                    sign=c.sign,
                    opening=self.opening[c.role],
                    movements=dict(sorted(moves.items())),
                    closing=self.opening[c.role] + sum(moves.values()),
                )
            )
        return out


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator > 0 else None


async def _ageing(
    conn: asyncpg.Connection,
    tenant_id: str,
    asset: str,
    role: str,
    to: datetime | None,
    ages_as_of: datetime,
    effective: bool,
) -> list[AgeingBucket]:
    lows = [lo for _, lo, _ in AGEING_BUCKETS]
    highs = [hi for _, _, hi in AGEING_BUCKETS]
    rows = await conn.fetch(_AGEING, tenant_id, asset, role, to, ages_as_of, lows, highs, effective)
    amounts = {r["i"]: r["amount"] for r in rows}
    return [
        AgeingBucket(bucket=label, min_days=lo, max_days=hi, amount=amounts.get(i, 0))
        for i, (label, lo, hi) in enumerate(AGEING_BUCKETS, start=1)
    ]


async def liability_report(
    conn: asyncpg.Connection,
    tenant_id: str,
    spec: LiabilitySpec,
    *,
    from_: datetime | None,
    to: datetime | None,
    basis: Basis = "created",
) -> LiabilityReport:
    """The roll-forward of [`from`, `to`) (open bounds when None). Run it in one repeatable-read
    transaction so the sums and the ageing see the same postings."""
    if from_ is not None and to is not None and from_ > to:
        raise DomainError("invalid-window", 422, "`from` must not be after `to`")
    generated_at: datetime = await conn.fetchval(_NOW)
    asset = await spec.asset(conn, tenant_id)
    effective = basis == "effective"
    sums = _Sums(spec)
    for row in await conn.fetch(_SUMS, tenant_id, asset, from_, to, effective):
        sums.add(row)
    categories = sums.categories()
    lines = sums.lines()
    by_name = {line.line: line for line in lines}
    opening = sum(c.sign * c.opening for c in categories)
    closing = sum(c.sign * c.closing for c in categories)
    breakage = None
    if spec.breakage is not None:
        numerator, denominator = spec.breakage
        breakage = _rate(by_name[numerator].amount, by_name[denominator].amount)
    ageing, ages_as_of = None, None
    if spec.ageing_role is not None:
        ages_as_of = to or generated_at
        ageing = await _ageing(conn, tenant_id, asset, spec.ageing_role, to, ages_as_of, effective)
    return LiabilityReport(
        liability=spec.name,
        asset=asset,
        basis=basis,
        from_=from_,
        to=to,
        generated_at=generated_at,
        opening=opening,
        closing=closing,
        lines=lines,
        categories=categories,
        other=by_name[OTHER].change,
        memos={name: -by_name[line].counter_accounts.get(code, 0) for name, line, code in spec.memos},
        breakage_rate=breakage,
        ageing=ageing,
        ages_as_of=ages_as_of,
    )
