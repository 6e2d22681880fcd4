"""Withdrawal rules (§6.5): a state machine whose every money move is one ledger entry.

    requested ──approve──▶ approved ──complete──▶ completed   (withdrawing → payouts + fees)
        │                     ├──────fail─────▶ failed      (withdrawing → available)
        └──────reject─────────┴─────reject────▶ rejected    (withdrawing → available)

Requesting moves the amount from available to withdrawing (the no-overdraft CHECK on available is the
guarantee against overdrawing, also under concurrency). Approval moves no money: it is recorded on the
row (`approved_at`). Each transition happens once; repeating it with the same body is a no-op, anything
else is 409 `invalid-transition`. Transitions decide under a row lock, not with pinned idempotency
keys, so a `complete` refused while `requested` succeeds once the withdrawal is approved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.referral import accounts
from services.referral.program.service import load_program
from services.referral.withdrawals import repository
from services.referral.withdrawals.schemas import Withdrawal, WithdrawalIn
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import Leg, balances, post_entry
from shared.pagination import Page, decode_cursor, encode_cursor

__all__ = ["Action", "fee_for", "get_withdrawal", "list_withdrawals", "request_withdrawal", "transition"]

Action = Literal["approve", "reject", "complete", "fail"]

# action -> (the status it leads to, the statuses it may leave)
_MOVES: dict[str, tuple[str, frozenset[str]]] = {
    "approve": ("approved", frozenset({"requested"})),
    "reject": ("rejected", frozenset({"requested", "approved"})),
    "complete": ("completed", frozenset({"approved"})),
    "fail": ("failed", frozenset({"approved"})),
}


def fee_for(amount: int, fee_bps: int) -> int:
    """The fee kept on a withdrawal: floor(amount × bps / 10000)."""
    return amount * fee_bps // 10_000


def _view(row: asyncpg.Record) -> Withdrawal:
    return Withdrawal(**dict(row), net_amount=row["amount"] - row["fee"])


def _event_data(view: Withdrawal, **extra: Any) -> dict[str, Any]:
    fields = ("withdrawal_id", "member_id", "amount", "fee", "net_amount", "currency", "channel", "status")
    return {name: getattr(view, name) for name in fields} | extra


async def _require_member(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    if not await repository.member_exists(conn, tenant_id, member_id):
        raise DomainError("member-not-found", 404, f"member {member_id} does not exist")


async def request_withdrawal(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, data: WithdrawalIn
) -> Withdrawal:
    """Move `amount` from available to withdrawing; auto-approved up to the programme's limit."""
    await _require_member(conn, tenant_id, member_id)
    config = (await load_program(conn, tenant_id)).config
    if data.amount < config.min_withdrawal:
        raise DomainError(
            "below-minimum", 422, f"the minimum withdrawal is {config.min_withdrawal}; {data.amount} was asked"
        )
    debt_code = accounts.debt(member_id)
    debt = await balances(conn, tenant_id, [debt_code])
    if debt_code in debt and debt[debt_code].balance > 0:
        raise DomainError(
            "open-debt", 409, f"member {member_id} owes {debt[debt_code].balance} of clawed-back commission"
        )
    currency = await accounts.tenant_currency(conn, tenant_id)
    fee = fee_for(data.amount, config.withdrawal_fee_bps)
    auto_approved = data.amount <= config.auto_approve_limit
    legs = [Leg(accounts.available(member_id), data.amount), Leg(accounts.withdrawing(member_id), -data.amount)]
    try:  # the account row's CHECK refuses an overdraft, atomically, whatever runs concurrently
        await post_entry(
            conn,
            tenant_id,
            kind="withdrawal.request",
            idempotency_key=f"withdrawal:{data.withdrawal_id}:request",
            legs=legs,
            source_ref=data.withdrawal_id,
            metadata={"member_id": member_id, "fee": fee},
        )
    except DomainError as refusal:
        if refusal.type != "insufficient-balance":
            raise
        raise DomainError(
            "insufficient-balance", 409, f"{data.amount} is more than member {member_id}'s available commission"
        ) from refusal
    row = await repository.insert_withdrawal(
        conn,
        tenant_id,
        withdrawal_id=data.withdrawal_id,
        member_id=member_id,
        amount=data.amount,
        fee=fee,
        currency=currency,
        channel=data.channel,
        account_ref=data.account_ref,
        status="approved" if auto_approved else "requested",
    )
    view = _view(row)
    await emit(conn, tenant_id, "withdrawal.requested", _event_data(view, auto_approved=auto_approved))
    if auto_approved:  # the one signal a payout worker needs, whoever approved
        await emit(conn, tenant_id, "withdrawal.approved", _event_data(view, auto_approved=True))
    return view


def _transition_legs(action: str, row: asyncpg.Record) -> list[Leg]:
    member_id, amount, fee = row["member_id"], row["amount"], row["fee"]
    withdrawing = Leg(accounts.withdrawing(member_id), amount)
    if action in ("reject", "fail"):
        return [withdrawing, Leg(accounts.available(member_id), -amount)]
    payout = [Leg(accounts.PAYOUTS, -(amount - fee)), Leg(accounts.FEES, -fee)]
    return [withdrawing, *(leg for leg in payout if leg.amount != 0)]


def _same_transition(action: str, row: asyncpg.Record, reason: str | None, payout_ref: str | None) -> bool:
    if action == "complete":
        return bool(row["payout_ref"] == payout_ref)
    if action in ("reject", "fail"):
        return bool(row["reason"] == reason)
    return True


async def transition(
    conn: asyncpg.Connection,
    tenant_id: str,
    withdrawal_id: str,
    action: Action,
    *,
    reason: str | None = None,
    payout_ref: str | None = None,
) -> tuple[Withdrawal, bool]:
    """Apply `action` once; returns the view and whether anything changed (False: a replay)."""
    row = await repository.lock_withdrawal(conn, tenant_id, withdrawal_id)
    if row is None:
        raise DomainError("withdrawal-not-found", 404, f"withdrawal {withdrawal_id} does not exist")
    target, sources = _MOVES[action]
    status = row["status"]
    if status == target:
        if _same_transition(action, row, reason, payout_ref):
            return _view(row), False  # a duplicate callback or retry: nothing to do
        raise DomainError(
            "invalid-transition", 409, f"withdrawal {withdrawal_id} is already {status} with another body"
        )
    if status not in sources:
        raise DomainError("invalid-transition", 409, f"withdrawal {withdrawal_id} is {status}; it cannot be {target}")
    if action != "approve":  # approval is a state only; every transition that moves money is an entry
        await post_entry(
            conn,
            tenant_id,
            kind=f"withdrawal.{action}",
            idempotency_key=f"withdrawal:{withdrawal_id}:{action}",
            legs=_transition_legs(action, row),
            reason=reason,
            source_ref=payout_ref or withdrawal_id,
            metadata={"withdrawal_id": withdrawal_id, "member_id": row["member_id"]},
        )
    view = _view(
        await repository.set_status(conn, tenant_id, withdrawal_id, target, reason=reason, payout_ref=payout_ref)
    )
    extra = {"reason": reason} if reason is not None else {"payout_ref": payout_ref} if payout_ref is not None else {}
    await emit(conn, tenant_id, f"withdrawal.{target}", _event_data(view, **extra))
    return view, True


async def get_withdrawal(conn: asyncpg.Connection, tenant_id: str, withdrawal_id: str) -> Withdrawal:
    row = await repository.fetch_withdrawal(conn, tenant_id, withdrawal_id)
    if row is None:
        raise DomainError("withdrawal-not-found", 404, f"withdrawal {withdrawal_id} does not exist")
    return _view(row)


async def list_withdrawals(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Withdrawal]:
    """A member's withdrawals, newest first."""
    before = decode_cursor(cursor, (datetime, str)) if cursor else None
    await _require_member(conn, tenant_id, member_id)
    rows = await repository.list_member_withdrawals(
        conn, tenant_id, member_id, status=status, before=before, limit=limit + 1
    )
    items = [_view(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor([last.requested_at, last.withdrawal_id]) if last else None)
