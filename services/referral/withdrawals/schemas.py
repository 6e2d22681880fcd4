"""The withdrawals' wire shapes (§6.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = [
    "ID_PATTERN",
    "ApproveIn",
    "Channel",
    "CompleteIn",
    "FailIn",
    "RejectIn",
    "Withdrawal",
    "WithdrawalIn",
    "WithdrawalStatus",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

Channel = Literal["wechat", "alipay", "bank", "wallet"]
WithdrawalStatus = Literal["requested", "approved", "completed", "rejected", "failed"]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class WithdrawalIn(msgspec.Struct, kw_only=True):
    """POST body. `withdrawal_id` makes the request idempotent; `amount` is in minor units (fen)."""

    withdrawal_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="minor units (fen)")]
    channel: Channel
    account_ref: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="the payee account on that channel")
    ]


class ApproveIn(msgspec.Struct, kw_only=True):
    """An approval carries nothing: `{}`."""


class RejectIn(msgspec.Struct, kw_only=True):
    reason: Reason


class CompleteIn(msgspec.Struct, kw_only=True):
    payout_ref: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="the payment channel's reference")
    ]


class FailIn(msgspec.Struct, kw_only=True):
    reason: Reason


class Withdrawal(msgspec.Struct, kw_only=True):
    """A withdrawal: `amount` left available commission; `net_amount` = amount − fee is what is paid out."""

    withdrawal_id: str
    member_id: str
    amount: int
    fee: int
    net_amount: int
    currency: str
    channel: Channel
    account_ref: str
    status: WithdrawalStatus
    reason: str | None
    payout_ref: str | None
    requested_at: datetime
    approved_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime
