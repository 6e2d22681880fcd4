"""The plans' and subscriptions' wire shapes (§5.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = [
    "CODE_PATTERN",
    "ID_PATTERN",
    "CancelIn",
    "Duration",
    "Plan",
    "PlanIn",
    "Subscription",
    "SubscriptionIn",
    "SubscriptionStarted",
    "SubscriptionStatus",
]

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

Duration = Literal["P1M", "P3M", "P1Y", "lifetime"]
SubscriptionStatus = Literal["active", "cancelled", "expired"]


class PlanIn(msgspec.Struct, kw_only=True):
    """PUT body. `tier_code` (optional) must name an existing tier (422 `unknown-tier`)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    duration: Annotated[Duration, msgspec.Meta(description="ISO 8601 months/year, or `lifetime` (never ends)")]
    price: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="minor units (fen), for display")]
    tier_code: Annotated[str, msgspec.Meta(pattern=CODE_PATTERN, min_length=1, max_length=64)] | None = None
    bonus_points: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="credited on purchase")] = 0
    grants_distribution: bool = False
    trial: Annotated[bool, msgspec.Meta(description="a trial plan: one trial per member")] = False
    active: Annotated[bool, msgspec.Meta(description="inactive plans cannot be bought")] = True


class Plan(msgspec.Struct, kw_only=True):
    code: str
    name: str
    duration: Duration
    price: int
    tier_code: str | None
    bonus_points: int
    grants_distribution: bool
    trial: bool
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class SubscriptionIn(msgspec.Struct, kw_only=True):
    """POST body: one purchase, idempotent by `subscription_id`."""

    subscription_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    plan_code: Annotated[str, msgspec.Meta(pattern=CODE_PATTERN, min_length=1, max_length=64)]
    paid_amount: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="minor units (fen)")]
    paid_at: Annotated[datetime, msgspec.Meta(description="RFC 3339; at most 5 minutes in the future")]


class CancelIn(msgspec.Struct, kw_only=True):
    """`refund: true` also takes back the plan's bonus points (debt if they were spent)."""

    refund: bool = False


class Subscription(msgspec.Struct, kw_only=True):
    """One purchase, with the plan as bought. `ends_at` null = lifetime. `status` stays `active` until
    the plan-expiry job or a cancellation; whether it runs now is `starts_at ≤ now < ends_at`."""

    subscription_id: str
    member_id: str
    plan_code: str
    tier_code: str | None
    duration: Duration
    trial: bool
    bonus_points: int
    status: SubscriptionStatus
    paid_amount: int
    currency: str
    paid_at: datetime
    starts_at: datetime
    ends_at: datetime | None
    cancelled_at: datetime | None
    refunded: bool
    created_at: datetime


class SubscriptionStarted(Subscription, kw_only=True):
    """The purchase, and when the member's plan of this tier now ends (null: lifetime)."""

    plan_ends_at: datetime | None
