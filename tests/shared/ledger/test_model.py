"""The ledger kernel against a model (DESIGN §4): a Hypothesis state machine on the real database.

Random opens, posts, replays, conflicting replays, overdraft attempts, reversals (twice, of a
reversal, of another tenant's entry, ones that would overdraw) and history reads run one by one, each
in its own transaction. An in-memory model predicts every outcome: a new entry, a replay of the first
one, or a refusal with its problem type. After every step the database must equal the model (accounts,
counters, balances, entry and leg counts) and `verify` must find no violation; a refused operation and
a replay must leave the tenant's rows byte-identical.

State machines are synchronous, so each run owns a private event loop with one connection on it; the
test functions are plain `def`s and never touch the session loop of pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shared.errors import DomainError
from shared.ledger import (
    MAX_AMOUNT,
    Leg,
    PostedEntry,
    balances,
    get_entry,
    history,
    open_account,
    post_entry,
    reverse_entry,
    verify,
)

T = TypeVar("T")

ASSETS = ("PTS", "CNY")
KINDS = ("earn", "redeem", "adjust")
ROLES = st.sampled_from(("member", "member", "debt", "issued", "redeemed"))  # members twice as likely
MEMBER_IDS = (0, 1, 2, 3)
NEIGHBOUR_ONLY = "member:neighbour:points"  # exists in the neighbour tenant only
SHARED_KEY = "shared-key"  # used by the neighbour too: keys are unique per tenant, not globally


@dataclass(frozen=True)
class Shape:
    normal_side: Literal["debit", "credit"]
    no_overdraft: bool
    tracked: bool


MEMBER = Shape("credit", no_overdraft=True, tracked=True)  # member:{id}:points and friends
DEBT = Shape("debit", no_overdraft=False, tracked=True)  # member:{id}:points_debt
PROGRAM_DEBIT = Shape("debit", no_overdraft=False, tracked=False)  # program:points_issued
PROGRAM_CREDIT = Shape("credit", no_overdraft=False, tracked=False)  # program:points_redeemed


def role_account(role: str, member: int, asset: str) -> tuple[str, Shape, str | None]:
    """(code, shape, owner) of an account of the chart (DESIGN §4.2), per asset."""
    if role == "member":
        return f"member:{member}:{'points' if asset == 'PTS' else 'commission'}", MEMBER, f"m{member}"
    if role == "debt":
        return f"member:{member}:{'points' if asset == 'PTS' else 'commission'}_debt", DEBT, f"m{member}"
    if role == "issued":
        return f"program:{asset.lower()}:issued", PROGRAM_DEBIT, None
    return f"program:{asset.lower()}:redeemed", PROGRAM_CREDIT, None


@dataclass
class AccountModel:
    code: str
    asset: str
    shape: Shape
    owner: str | None
    account_id: int
    debits: int = 0
    credits: int = 0

    @property
    def balance(self) -> int:
        return self.credits - self.debits if self.shape.normal_side == "credit" else self.debits - self.credits


LegsT = tuple[tuple[str, int], ...]


@dataclass
class EntryModel:
    entry_id: int
    key: str
    kind: str
    legs: LegsT
    reverses: int | None
    reversed_by: int | None = None


@dataclass
class Outcome:
    """What the model expects: a refusal (`refusal` is its type), a replay of `entry_id`, or a new entry."""

    refusal: str | None = None
    replay_of: int | None = None
    legs: LegsT = ()
    reverses: int | None = None

    @property
    def new(self) -> bool:
        return self.refusal is None and self.replay_of is None


@dataclass
class Model:
    accounts: dict[str, AccountModel] = field(default_factory=dict)
    entries: dict[int, EntryModel] = field(default_factory=dict)
    keys: dict[str, EntryModel] = field(default_factory=dict)
    postings: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # code -> (entry, leg, amount)

    def of_asset(self, asset: str) -> list[str]:
        return sorted(code for code, account in self.accounts.items() if account.asset == asset)

    def overdrawn_by(self, legs: LegsT) -> bool:
        """Would applying `legs` break a no-overdraft limit? The CHECK sees the account's final counters."""
        delta: dict[str, tuple[int, int]] = {}
        for code, amount in legs:
            debits, credits = delta.get(code, (0, 0))
            delta[code] = (debits + max(amount, 0), credits + max(-amount, 0))
        for code, (debits, credits) in delta.items():
            account = self.accounts[code]
            after = AccountModel(
                code, account.asset, account.shape, None, 0, account.debits + debits, account.credits + credits
            )
            if account.shape.no_overdraft and after.balance < 0:  # the limit is on the normal side
                return True
        return False

    def _write(self, key: str, kind: str, legs: LegsT, reverses: int | None) -> Outcome:
        """The SQL part of a post (post_entry()): idempotency, unknown accounts, balance per asset, limits."""
        if key in self.keys:
            first = self.keys[key]
            if (first.kind, first.legs, first.reverses) == (kind, legs, reverses):
                return Outcome(replay_of=first.entry_id)
            return Outcome(refusal="idempotency-conflict")
        if any(code not in self.accounts for code, _ in legs):
            return Outcome(refusal="account-not-found")
        if reverses is not None and self.entries[reverses].reversed_by is not None:
            return Outcome(refusal="already-reversed")
        totals: dict[str, int] = {}
        for code, amount in legs:
            asset = self.accounts[code].asset
            totals[asset] = totals.get(asset, 0) + amount
        if any(totals.values()):
            return Outcome(refusal="unbalanced-entry")
        if self.overdrawn_by(legs):
            return Outcome(refusal="insufficient-balance")
        return Outcome(legs=legs, reverses=reverses)

    def predict_post(self, key: str, kind: str, legs: LegsT) -> Outcome:
        if len(legs) < 2:
            return Outcome(refusal="unbalanced-entry")
        if any(amount == 0 or abs(amount) > MAX_AMOUNT for _, amount in legs):
            return Outcome(refusal="invalid-amount")
        if sum(amount for _, amount in legs) != 0:
            return Outcome(refusal="unbalanced-entry")
        return self._write(key, kind, legs, None)

    def predict_reverse(self, entry_id: int, key: str, kind: str) -> Outcome:
        original = self.entries.get(entry_id)
        if original is None:
            return Outcome(refusal="entry-not-found")
        if original.reverses is not None:
            return Outcome(refusal="reversal-not-reversible")
        return self._write(key, kind, tuple((code, -amount) for code, amount in original.legs), entry_id)

    def apply(self, entry_id: int, key: str, kind: str, outcome: Outcome) -> None:
        entry = EntryModel(entry_id, key, kind, outcome.legs, outcome.reverses)
        self.entries[entry_id] = entry
        self.keys[key] = entry
        if outcome.reverses is not None:
            self.entries[outcome.reverses].reversed_by = entry_id
        for leg, (code, amount) in enumerate(outcome.legs, start=1):
            account = self.accounts[code]
            account.debits += max(amount, 0)
            account.credits += max(-amount, 0)
            self.postings.setdefault(code, []).append((entry_id, leg, amount))


Snapshot = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


async def snapshot(conn: asyncpg.Connection, tenant_id: str) -> Snapshot:
    """Every ledger row of one tenant, in primary-key order."""
    accounts = await conn.fetch("SELECT * FROM accounts WHERE tenant_id = $1 ORDER BY tenant_id, account_id", tenant_id)
    entries = await conn.fetch("SELECT * FROM entries WHERE tenant_id = $1 ORDER BY tenant_id, entry_id", tenant_id)
    postings = await conn.fetch(
        "SELECT * FROM postings WHERE tenant_id = $1 ORDER BY tenant_id, entry_id, leg", tenant_id
    )
    return [tuple(r) for r in accounts], [tuple(r) for r in entries], [tuple(r) for r in postings]


def integer(value: Any) -> int:
    """An amount read back from the API: a Python int, never a Decimal (PostgreSQL's sum(bigint) is
    numeric, and msgspec would encode a Decimal as a JSON string)."""
    assert type(value) is int, type(value)
    return value


def nonzero(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high).flatmap(lambda n: st.sampled_from((n, -n)))


# Mostly small amounts, so members run dry and limits bite; sometimes large ones.
AMOUNTS = st.one_of(nonzero(1, 60), nonzero(1, 60), nonzero(1, 60), nonzero(61, MAX_AMOUNT // 4))


class LedgerMachine(RuleBasedStateMachine):
    dsn: str | None = None  # set by the test functions from the `database_url` fixture

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection | None = None
        self.model = Model()
        self.counter = 0
        try:
            assert self.dsn is not None, "run through the test functions below"
            self.conn = self.run(asyncpg.connect(self.dsn, server_settings={"search_path": "loyalty"}))
            self.tenant = "sm" + uuid.uuid4().hex[:20]
            self.neighbour = "sn" + uuid.uuid4().hex[:20]
            self.neighbour_entry = self.run(self._setup())
            self.neighbour_rows = self.run(snapshot(self.db, self.neighbour))
        except BaseException:
            self.teardown()
            raise

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def db(self) -> asyncpg.Connection:
        assert self.conn is not None
        return self.conn

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            if self.conn is not None and not self.conn.is_closed():
                try:
                    self.run(self.conn.close(timeout=10))
                except BaseException:
                    self.conn.terminate()
                    raise
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    async def _setup(self) -> int:
        """Our tenant, and a neighbour with an entry of its own: ours must never see or touch it."""
        conn = self.db
        for tenant_id in (self.tenant, self.neighbour):
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant_id)
        async with conn.transaction():
            issued, _, _ = role_account("issued", 0, "PTS")
            await open_account(
                conn, self.neighbour, issued, "PTS", normal_side="debit", no_overdraft=False, tracked=False
            )
            await open_account(conn, self.neighbour, NEIGHBOUR_ONLY, "PTS", owner_id="n")
            await open_account(conn, self.neighbour, "member:0:points", "PTS", owner_id="m0")
            posted = await post_entry(
                conn,
                self.neighbour,
                kind="earn",
                idempotency_key=SHARED_KEY,
                legs=[Leg(issued, 7), Leg(NEIGHBOUR_ONLY, -3), Leg("member:0:points", -4)],
            )
        return posted.entry_id

    def fresh_key(self) -> str:
        self.counter += 1
        return f"k{self.counter}"

    async def _in_transaction(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self.db.transaction():
            return await operation(self.db)

    def attempt(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T | DomainError:
        """One operation in its own transaction; a refusal rolls it back and is returned."""
        result: T | DomainError
        try:
            result = self.run(self._in_transaction(operation))
        except DomainError as refusal:
            result = refusal
        assert not self.db.is_in_transaction()
        return result

    def expect_refusal(self, operation: Callable[[asyncpg.Connection], Awaitable[Any]], type_: str) -> None:
        before = self.run(snapshot(self.db, self.tenant))
        result = self.attempt(operation)
        assert isinstance(result, DomainError), f"expected {type_}, got {result!r}"
        assert result.type == type_, (result.type, result.detail)
        assert 400 <= result.status < 500
        assert self.run(snapshot(self.db, self.tenant)) == before, "a refusal changed the tenant's rows"

    def expect_no_write(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        before = self.run(snapshot(self.db, self.tenant))
        result = self.attempt(operation)
        assert not isinstance(result, DomainError), result
        assert self.run(snapshot(self.db, self.tenant)) == before, "a replay wrote something"
        return result

    def execute(
        self,
        outcome: Outcome,
        key: str,
        kind: str,
        operation: Callable[[asyncpg.Connection], Awaitable[PostedEntry]],
    ) -> None:
        """Run a post or a reversal and hold the database to the model's prediction."""
        if outcome.refusal is not None:
            self.expect_refusal(operation, outcome.refusal)
        elif outcome.replay_of is not None:
            posted = self.expect_no_write(operation)
            assert posted == PostedEntry(entry_id=outcome.replay_of, replayed=True)
        else:
            posted = self.attempt(operation)
            assert isinstance(posted, PostedEntry), f"expected a new entry, got {posted!r}"
            assert not posted.replayed
            assert all(posted.entry_id > entry_id for entry_id in self.model.entries)
            self.model.apply(posted.entry_id, key, kind, outcome)
            self.check_entry(posted.entry_id)

    def check_entry(self, entry_id: int) -> None:
        expected = self.model.entries[entry_id]
        entry = self.run(get_entry(self.db, self.tenant, entry_id))
        assert (entry.entry_id, entry.kind, entry.idempotency_key, entry.reverses_entry_id) == (
            entry_id,
            expected.kind,
            expected.key,
            expected.reverses,
        )
        legs = [(leg.account, leg.asset, leg.amount) for leg in entry.legs]
        assert legs == [(code, self.model.accounts[code].asset, amount) for code, amount in expected.legs]

    def post(self, key: str, kind: str, legs: LegsT) -> Outcome:
        outcome = self.model.predict_post(key, kind, legs)
        leg_list = [Leg(code, amount) for code, amount in legs]

        async def operation(conn: asyncpg.Connection) -> PostedEntry:
            return await post_entry(conn, self.tenant, kind=kind, idempotency_key=key, legs=leg_list)

        self.execute(outcome, key, kind, operation)
        return outcome

    def reverse(self, entry_id: int, key: str, kind: str = "reversal") -> Outcome:
        outcome = self.model.predict_reverse(entry_id, key, kind)

        async def operation(conn: asyncpg.Connection) -> PostedEntry:
            return await reverse_entry(conn, self.tenant, entry_id, idempotency_key=key, kind=kind)

        self.execute(outcome, key, kind, operation)
        return outcome

    def open(self, code: str, asset: str, shape: Shape, owner: str | None) -> None:
        async def operation(conn: asyncpg.Connection) -> Any:
            return await open_account(
                conn,
                self.tenant,
                code,
                asset,
                owner_id=owner,
                normal_side=shape.normal_side,  # type: ignore[arg-type]
                no_overdraft=shape.no_overdraft,
                tracked=shape.tracked,
            )

        existing = self.model.accounts.get(code)
        if shape.no_overdraft and not shape.tracked:  # a limit needs a counter: a CHECK refuses the row
            self.expect_refusal(operation, "constraint-violated")
        elif existing is None:
            account = self.attempt(operation)
            assert not isinstance(account, DomainError), account
            assert (
                account.code,
                account.asset,
                account.owner_id,
                account.normal_side,
                account.no_overdraft,
                account.track_balance,
            ) == (code, asset, owner, shape.normal_side, shape.no_overdraft, shape.tracked)
            self.model.accounts[code] = AccountModel(code, asset, shape, owner, account.account_id)
        elif (existing.asset, existing.shape, existing.owner) == (asset, shape, owner):
            account = self.expect_no_write(operation)
            assert account.account_id == existing.account_id
        else:
            self.expect_refusal(operation, "account-conflict")

    def draw_legs(self, data: st.DataObject, codes: list[str], min_legs: int = 2) -> LegsT:
        """Balanced legs between `codes` (an account may appear twice)."""
        n = data.draw(st.integers(min_legs, 4), label="legs")
        amounts = data.draw(
            st.lists(AMOUNTS, min_size=n - 1, max_size=n - 1).filter(lambda xs: sum(xs) != 0), label="amounts"
        )
        amounts.append(-sum(amounts))
        chosen = data.draw(st.lists(st.sampled_from(codes), min_size=n, max_size=n), label="accounts")
        return tuple(zip(chosen, amounts, strict=True))

    def assets_with_two_accounts(self) -> list[str]:
        return [asset for asset in ASSETS if len(self.model.of_asset(asset)) >= 2]

    def originals(self) -> list[EntryModel]:
        return [e for _, e in sorted(self.model.entries.items()) if e.reverses is None]

    # --- rules -------------------------------------------------------------------------------

    @initialize(
        accounts=st.lists(
            st.tuples(ROLES, st.sampled_from(MEMBER_IDS), st.sampled_from(ASSETS)), min_size=2, max_size=5
        )
    )
    def open_a_few(self, accounts: list[tuple[str, int, str]]) -> None:
        """A head start, so most runs get to post early; later opens come from the rules."""
        for role, member, asset in accounts:
            self.open_chart_account(role, member, asset)

    @rule(role=ROLES, member=st.sampled_from(MEMBER_IDS), asset=st.sampled_from(ASSETS))
    def open_chart_account(self, role: str, member: int, asset: str) -> None:
        """A new account, or the same account again (idempotent: nothing written)."""
        code, shape, owner = role_account(role, member, asset)
        self.open(code, asset, shape, owner)

    @precondition(lambda self: self.model.accounts)
    @rule(data=st.data())
    def open_with_another_shape(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(sorted(self.model.accounts)), label="code")
        account = self.model.accounts[code]
        change = data.draw(st.sampled_from(("asset", "side", "limit", "tracking", "owner")), label="change")
        asset, shape, owner = account.asset, account.shape, account.owner
        if change == "asset":
            asset = "CNY" if asset == "PTS" else "PTS"
        elif change == "side":
            side: Literal["debit", "credit"] = "debit" if shape.normal_side == "credit" else "credit"
            shape = Shape(side, shape.no_overdraft, shape.tracked)
        elif change == "limit":
            shape = Shape(shape.normal_side, not shape.no_overdraft, shape.tracked)
        elif change == "tracking":
            shape = Shape(shape.normal_side, shape.no_overdraft, not shape.tracked)
        else:
            owner = (owner or "") + "x"
        self.open(code, asset, shape, owner)

    @precondition(lambda self: self.assets_with_two_accounts())
    @rule(data=st.data())
    def post_balanced(self, data: st.DataObject) -> None:
        """2-4 legs within one asset; may be refused for overdraft or replay an earlier key."""
        asset = data.draw(st.sampled_from(self.assets_with_two_accounts()), label="asset")
        legs = self.draw_legs(data, self.model.of_asset(asset))
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        key = self.fresh_key() if SHARED_KEY in self.model.keys or data.draw(st.booleans()) else SHARED_KEY
        self.post(key, kind, legs)

    def earn_pairs(self) -> list[tuple[str, str]]:
        """(source without limit, member) pairs of one asset."""
        accounts = self.model.accounts
        return [
            (source, member)
            for source in sorted(accounts)
            for member in sorted(accounts)
            if not accounts[source].shape.no_overdraft
            and accounts[member].shape.no_overdraft
            and accounts[source].asset == accounts[member].asset
        ]

    @precondition(lambda self: self.earn_pairs())
    @rule(data=st.data())
    def post_earn(self, data: st.DataObject) -> None:
        """A member earns from an account without limit: always goes through."""
        source, member = data.draw(st.sampled_from(self.earn_pairs()), label="pair")
        amount = data.draw(st.integers(1, 100), label="amount")
        outcome = self.post(self.fresh_key(), "earn", ((source, amount), (member, -amount)))
        assert outcome.new

    @precondition(
        lambda self: (
            any(a.shape.no_overdraft and a.balance > 0 for a in self.model.accounts.values())
            and self.assets_with_two_accounts()
        )
    )
    @rule(data=st.data())
    def post_spend(self, data: st.DataObject) -> None:
        """A member spends at most what it holds (so reversing its earlier earns may overdraw it)."""
        members = sorted(c for c, a in self.model.accounts.items() if a.shape.no_overdraft and a.balance > 0)
        code = data.draw(st.sampled_from(members), label="member")
        account = self.model.accounts[code]
        others = [c for c in self.model.of_asset(account.asset) if c != code]
        if not others:
            return
        amount = data.draw(st.integers(1, min(account.balance, MAX_AMOUNT)), label="amount")
        counter = data.draw(st.sampled_from(others), label="counter")
        outcome = self.post(self.fresh_key(), "redeem", ((code, amount), (counter, -amount)))
        assert outcome.new

    @precondition(lambda self: any(a.shape.no_overdraft for a in self.model.accounts.values()))
    @rule(data=st.data())
    def post_overdraft(self, data: st.DataObject) -> None:
        """Debit a no-overdraft account by more than it holds."""
        limited = sorted(code for code, a in self.model.accounts.items() if a.shape.no_overdraft)
        code = data.draw(st.sampled_from(limited), label="overdrawn")
        account = self.model.accounts[code]
        others = [c for c in self.model.of_asset(account.asset) if c != code]
        amount = account.balance + data.draw(st.integers(1, 20), label="beyond")
        if not others or amount > MAX_AMOUNT:
            return
        counter = data.draw(st.sampled_from(others), label="counter")
        outcome = self.post(self.fresh_key(), "redeem", ((code, amount), (counter, -amount)))
        assert outcome.refusal == "insufficient-balance"

    @precondition(lambda self: self.model.keys)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Same key, same legs: the first entry comes back and nothing is written."""
        key = data.draw(st.sampled_from(sorted(self.model.keys)), label="key")
        first = self.model.keys[key]
        if first.reverses is None:
            outcome = self.post(key, first.kind, first.legs)
        else:
            outcome = self.reverse(first.reverses, key, first.kind)
        assert outcome.replay_of == first.entry_id

    @precondition(lambda self: self.model.keys)
    @rule(data=st.data())
    def replay_with_other_legs(self, data: st.DataObject) -> None:
        """Same key, different entry: `idempotency-conflict`, nothing written."""
        key = data.draw(st.sampled_from(sorted(self.model.keys)), label="key")
        first = self.model.keys[key]
        how = data.draw(st.sampled_from(("kind", "negated", "as-post", "reverse-other")), label="how")
        if how == "kind":
            outcome = (
                self.post(key, first.kind + "-other", first.legs)
                if first.reverses is None
                else self.reverse(first.reverses, key, first.kind + "-other")
            )
        elif how == "negated":
            outcome = self.post(key, first.kind, tuple((code, -amount) for code, amount in first.legs))
        elif how == "as-post":  # a reversal's key and legs, but posted as a plain entry (or vice versa)
            outcome = (
                self.post(key, first.kind, first.legs)
                if first.reverses is not None
                else (self.reverse(first.entry_id, key, first.kind))
            )
        else:
            targets = [e.entry_id for e in self.originals() if e.entry_id != first.reverses]
            if not targets:
                return
            outcome = self.reverse(data.draw(st.sampled_from(targets), label="target"), key, "reversal")
        assert outcome.refusal == "idempotency-conflict"

    @precondition(lambda self: self.model.entries)
    @rule(data=st.data())
    def reverse_any(self, data: st.DataObject) -> None:
        """Any entry, with a fresh key: new, `already-reversed`, `reversal-not-reversible` or overdraw."""
        entry_id = data.draw(st.sampled_from(sorted(self.model.entries)), label="entry")
        self.reverse(entry_id, self.fresh_key())

    @precondition(lambda self: any(e.reversed_by is None for e in self.originals()))
    @rule(data=st.data())
    def reverse_unreversed(self, data: st.DataObject) -> None:
        entry_id = data.draw(
            st.sampled_from([e.entry_id for e in self.originals() if e.reversed_by is None]), label="entry"
        )
        outcome = self.reverse(entry_id, self.fresh_key())
        assert outcome.new or outcome.refusal == "insufficient-balance"

    @precondition(lambda self: any(e.reversed_by is not None for e in self.model.entries.values()))
    @rule(data=st.data())
    def reverse_twice(self, data: st.DataObject) -> None:
        reversed_ = [e.entry_id for e in self.originals() if e.reversed_by is not None]
        outcome = self.reverse(data.draw(st.sampled_from(reversed_), label="entry"), self.fresh_key())
        assert outcome.refusal == "already-reversed"

    @precondition(lambda self: any(e.reverses is not None for e in self.model.entries.values()))
    @rule(data=st.data())
    def reverse_a_reversal(self, data: st.DataObject) -> None:
        reversals = sorted(e.entry_id for e in self.model.entries.values() if e.reverses is not None)
        outcome = self.reverse(data.draw(st.sampled_from(reversals), label="entry"), self.fresh_key())
        assert outcome.refusal == "reversal-not-reversible"

    @precondition(
        lambda self: any(
            e.reversed_by is None and self.model.overdrawn_by(tuple((c, -a) for c, a in e.legs))
            for e in self.originals()
        )
    )
    @rule(data=st.data())
    def reverse_would_overdraw(self, data: st.DataObject) -> None:
        """The points were spent since: undoing their grant would overdraw the member."""
        candidates = [
            e.entry_id
            for e in self.originals()
            if e.reversed_by is None and self.model.overdrawn_by(tuple((c, -a) for c, a in e.legs))
        ]
        outcome = self.reverse(data.draw(st.sampled_from(candidates), label="entry"), self.fresh_key())
        assert outcome.refusal == "insufficient-balance"

    @precondition(lambda self: self.model.entries)
    @rule(which=st.sampled_from(("neighbour", "never")))
    def reverse_unknown_entry(self, which: str) -> None:
        """Another tenant's entry, or one that never existed: 404, never the neighbour's data."""
        entry_id = self.neighbour_entry if which == "neighbour" else 2**62
        assert entry_id not in self.model.entries
        outcome = self.reverse(entry_id, self.fresh_key())
        assert outcome.refusal == "entry-not-found"

    @precondition(lambda self: self.model.accounts)
    @rule(data=st.data())
    def post_malformed(self, data: st.DataObject) -> None:
        """Refused before or by SQL: one leg, unbalanced, zero or oversize amounts, assets mixed,
        an account that exists only in the neighbour tenant."""
        codes = sorted(self.model.accounts)
        how = data.draw(
            st.sampled_from(("one-leg", "unbalanced", "zero", "oversize", "mixed-assets", "unknown-account")),
            label="how",
        )
        pick = st.sampled_from(codes)
        a, b = data.draw(pick, label="a"), data.draw(pick, label="b")
        amount = data.draw(st.integers(1, 60), label="amount")
        if how == "one-leg":
            legs: LegsT = ((a, amount),)
        elif how == "unbalanced":
            legs = ((a, amount), (b, -amount - data.draw(nonzero(1, 5), label="off")))
        elif how == "zero":
            legs = ((a, 0), (b, 0)) if data.draw(st.booleans()) else ((a, amount), (b, 0), (a, -amount))
        elif how == "oversize":
            legs = ((a, MAX_AMOUNT + 1), (b, -(MAX_AMOUNT + 1)))
        elif how == "mixed-assets":
            pts, cny = self.model.of_asset("PTS"), self.model.of_asset("CNY")
            if not pts or not cny:
                return
            legs = ((data.draw(st.sampled_from(pts)), amount), (data.draw(st.sampled_from(cny)), -amount))
        else:
            legs = ((a, amount), (NEIGHBOUR_ONLY, -amount))
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        outcome = self.post(self.fresh_key(), kind, legs)
        assert outcome.refusal is not None

    @precondition(lambda self: self.assets_with_two_accounts())
    @rule(data=st.data())
    def post_at_max_amount(self, data: st.DataObject) -> None:
        """The largest amount a leg may carry; taken from an account without limit so it goes through
        (or is refused as an overdraft when it lands on the wrong side of a member)."""
        asset = data.draw(st.sampled_from(self.assets_with_two_accounts()), label="asset")
        codes = self.model.of_asset(asset)
        a, b = data.draw(st.sampled_from(codes), label="debit"), data.draw(st.sampled_from(codes), label="credit")
        self.post(self.fresh_key(), "adjust", ((a, MAX_AMOUNT), (b, -MAX_AMOUNT)))

    @precondition(lambda self: self.model.accounts)
    @rule(data=st.data())
    def read_history(self, data: st.DataObject) -> None:
        """Newest first, paged by (entry, leg), with the balance after each line, all as the model says."""
        code = data.draw(st.sampled_from(sorted(self.model.accounts)), label="code")
        limit = data.draw(st.integers(1, 6), label="limit")
        account = self.model.accounts[code]
        sign = -1 if account.shape.normal_side == "credit" else 1
        expected, running = [], 0
        for entry_id, leg, amount in sorted(self.model.postings.get(code, [])):
            running += sign * amount
            expected.append((entry_id, leg, self.model.entries[entry_id].kind, sign * amount, running))
        expected.reverse()
        assert not expected or expected[0][4] == account.balance
        seen: list[tuple[int, int, str, int, int]] = []
        before: tuple[int, int] | None = None
        while True:
            page = self.run(history(self.db, self.tenant, code, limit=limit, before=before))
            seen += [(h.entry_id, h.leg, h.kind, h.amount, integer(h.balance_after)) for h in page]
            if len(page) < limit:
                break
            before = (page[-1].entry_id, page[-1].leg)
        assert seen == expected

    # --- after every step ------------------------------------------------------------------------

    @invariant()
    def database_equals_model(self) -> None:
        self.run(self._check_database())

    async def _check_database(self) -> None:
        conn, model = self.db, self.model
        rows = await conn.fetch(
            """SELECT code, account_id, asset, owner_id, normal_side, debits_must_not_exceed_credits,
                      credits_must_not_exceed_debits, track_balance
                 FROM accounts WHERE tenant_id = $1""",
            self.tenant,
        )
        assert {r["code"]: tuple(r) for r in rows} == {
            a.code: (
                a.code,
                a.account_id,
                a.asset,
                a.owner,
                a.shape.normal_side,
                a.shape.no_overdraft and a.shape.normal_side == "credit",
                a.shape.no_overdraft and a.shape.normal_side == "debit",
                a.shape.tracked,
            )
            for a in model.accounts.values()
        }
        found = await balances(conn, self.tenant, sorted(model.accounts))
        assert sorted(found) == sorted(model.accounts)
        for code, account in model.accounts.items():
            got = found[code]
            assert (got.asset, integer(got.debits_posted), integer(got.credits_posted), integer(got.balance)) == (
                account.asset,
                account.debits,
                account.credits,
                account.balance,
            ), code
            if account.shape.no_overdraft:
                assert got.balance >= 0
        entries, legs = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM entries WHERE tenant_id = $1), "
            "(SELECT count(*) FROM postings WHERE tenant_id = $1)",
            self.tenant,
        )
        assert entries == len(model.entries)
        assert legs == sum(len(e.legs) for e in model.entries.values())
        report = await verify(conn, self.tenant)
        assert report.ok and report.violations == [], report.violations
        assert await snapshot(conn, self.neighbour) == self.neighbour_rows, "the neighbour tenant changed"


def _run(dsn: str, max_examples: int, steps: int) -> None:
    LedgerMachine.dsn = dsn
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        LedgerMachine.dsn = None


def test_ledger_matches_model(database_url: str) -> None:
    _run(database_url, max_examples=60, steps=25)


@pytest.mark.slow
def test_ledger_matches_model_long(database_url: str) -> None:
    _run(database_url, max_examples=300, steps=40)
