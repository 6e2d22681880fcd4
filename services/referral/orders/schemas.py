"""The wire shapes of orders, refunds and commission (§6.4): the public contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = [
    "ChainLink",
    "Commission",
    "CommissionState",
    "OrderId",
    "OrderIn",
    "OrderItem",
    "OrderItemIn",
    "OrderView",
    "ReceivedIn",
    "Refund",
    "RefundIn",
    "RefundItem",
    "RefundResult",
    "Reversal",
    "SkippedReason",
]

# Business ids end up in ledger keys (`accrue:{order_id}`, `release:{order_id}:{item_id}:{level}`) and
# in paths, so they are plain identifiers: no ':' (keys stay unambiguous), no '/' or dot segments.
OrderId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64)]
Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PaidAmount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="fen actually paid for the line")]
Amount = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="minor units (fen)")]
Instant = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with offset")]

CommissionState = Literal["frozen", "released", "reversed"]
SkippedReason = Literal["suspended", "not-approved"]


class OrderItemIn(msgspec.Struct, kw_only=True):
    item_id: Text64
    category: Text64 | None = None
    amount: PaidAmount
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1


class OrderIn(msgspec.Struct, kw_only=True):
    """POST /v1/orders. `amount` is what the buyer paid for the whole line, after discounts."""

    order_id: OrderId
    buyer_id: Text64
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[OrderItemIn], msgspec.Meta(min_length=1, max_length=500)]
    paid_at: Instant


class ReceivedIn(msgspec.Struct, kw_only=True):
    received_at: Instant


class RefundItem(msgspec.Struct, kw_only=True):
    item_id: Text64
    amount: Amount


class RefundIn(msgspec.Struct, kw_only=True):
    refund_id: OrderId
    items: Annotated[list[RefundItem], msgspec.Meta(min_length=1, max_length=500)]


class ChainLink(msgspec.Struct, kw_only=True):
    """One level of the chain snapshotted at payment. `rate_bps` is the level's rate for this member
    (their distributor level's, else the programme's; 0 when skipped); category overrides show on
    the commission rows."""

    level: int
    member_id: str
    level_code: str | None
    rate_bps: int
    skipped_reason: SkippedReason | None


class Commission(msgspec.Struct, kw_only=True):
    """One (item, level) that pays. Net owed = amount - reversed_amount; `written_off` is the part of
    `reversed_amount` the `cap` clawback policy could not take back."""

    level: int
    member_id: str
    rate_bps: int
    base_amount: int
    amount: int
    reversed_amount: int
    written_off: int
    state: CommissionState
    release_at: datetime | None  # None: waits for POST /v1/orders/{order_id}/received
    released_at: datetime | None


class OrderItem(msgspec.Struct, kw_only=True):
    item_id: str
    category: str | None
    amount: int
    quantity: int
    refunded_amount: int
    commissions: list[Commission]


class Refund(msgspec.Struct, kw_only=True):
    refund_id: str
    amount: int
    items: list[RefundItem]
    created_at: datetime


class OrderView(msgspec.Struct, kw_only=True):
    order_id: str
    buyer_id: str
    currency: str
    paid_at: datetime
    received_at: datetime | None
    total_amount: int
    refunded_amount: int
    commission_amount: int  # accrued over every item and level, before reversals
    rule_version: int  # the programme version the order was paid under (0 = defaults)
    chain: list[ChainLink]
    items: list[OrderItem]
    refunds: list[Refund]


class Reversal(msgspec.Struct, kw_only=True):
    """What one refund took back from one (item, level): `amount` = from_frozen + from_available +
    to_debt + written_off."""

    item_id: str
    level: int
    member_id: str
    amount: int
    from_frozen: int
    from_available: int
    to_debt: int
    written_off: int


class RefundResult(msgspec.Struct, kw_only=True):
    """POST /v1/orders/{order_id}/refunds: the refund and the commission it reversed."""

    refund_id: str
    order_id: str
    amount: int
    items: list[RefundItem]
    commission_reversed: int
    reversals: list[Reversal]
    created_at: datetime
