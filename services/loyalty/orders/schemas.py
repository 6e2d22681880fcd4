"""The wire shapes of orders and refunds (§5.4): the public contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = [
    "ID_PATTERN",
    "OrderIn",
    "OrderItem",
    "OrderItemIn",
    "OrderState",
    "OrderView",
    "Refund",
    "RefundIn",
    "RefundItem",
    "RefundItemIn",
    "RefundResult",
]

# Business ids end up in ledger keys (`earn:{order_id}`, `refund:{refund_id}`) and in paths: plain
# identifiers, no ':' (keys stay unambiguous), no '/' or dot segments.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
BusinessId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PaidAmount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="minor units (fen) paid for the line")]
Amount = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="minor units (fen)")]

OrderState = Literal["pending", "released"]


class OrderItemIn(msgspec.Struct, kw_only=True):
    item_id: Text64
    sku: Text64 | None = None
    category: Text64 | None = None
    amount: PaidAmount
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1


class OrderIn(msgspec.Struct, kw_only=True):
    """POST /v1/orders. `amount` is what the member paid for the whole line, after discounts."""

    order_id: BusinessId
    member_id: BusinessId
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[OrderItemIn], msgspec.Meta(min_length=1, max_length=500)]
    paid_at: datetime


class OrderItem(msgspec.Struct, kw_only=True):
    """A line with its share of the order's points; `reversed_points` = what refunds took back of it."""

    item_id: str
    sku: str | None
    category: str | None
    amount: int
    quantity: int
    points: int
    refunded_amount: int
    reversed_points: int
    rule_codes: list[str]


class RefundItem(msgspec.Struct, kw_only=True):
    item_id: str
    amount: int
    points_reversed: int


class Refund(msgspec.Struct, kw_only=True):
    """A refund: `points_reversed` = what it took back, of which `debt_points` were booked as debt and
    `written_off` lost under the `cap` policy."""

    refund_id: str
    amount: int
    points_reversed: int
    debt_points: int
    written_off: int
    items: list[RefundItem]
    created_at: datetime


class OrderView(msgspec.Struct, kw_only=True):
    """An order and its points. `state`: `pending` until `pending_until` (then the release job makes them
    available, in a lot expiring at `lot_expires_at`, null = never), `released` once it did."""

    order_id: str
    member_id: str
    currency: str
    paid_at: datetime
    total_amount: int
    refunded_amount: int
    points: int
    reversed_points: int
    state: OrderState
    pending_until: datetime
    released_at: datetime | None
    lot_expires_at: datetime | None
    rule_version: int  # the programme version the order was paid under (0 = defaults)
    tier_code: str | None  # the effective tier at payment
    multiplier_bps: int  # its earning multiplier
    items: list[OrderItem]
    refunds: list[Refund]
    created_at: datetime


class RefundItemIn(msgspec.Struct, kw_only=True):
    item_id: Text64
    amount: Amount


class RefundIn(msgspec.Struct, kw_only=True):
    refund_id: BusinessId
    items: Annotated[list[RefundItemIn], msgspec.Meta(min_length=1, max_length=500)]


class RefundResult(msgspec.Struct, kw_only=True):
    """POST /v1/orders/{order_id}/refunds: the refund, where its points came from, and the order after it."""

    refund: Refund
    from_pending: int
    from_available: int
    to_debt: int
    written_off: int
    order: OrderView
