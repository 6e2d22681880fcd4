"""The rewards' and redemptions' wire shapes (§5.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = [
    "CODE_PATTERN",
    "ID_PATTERN",
    "CancelIn",
    "Redemption",
    "RedemptionIn",
    "RedemptionStatus",
    "Reward",
    "RewardIn",
    "RewardKind",
]

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

RewardKind = Literal["coupon", "gift", "custom"]
RedemptionStatus = Literal["completed", "cancelled"]


class RewardIn(msgspec.Struct, kw_only=True):
    """PUT body. `stock` is the absolute number left (null: unlimited); a PUT sets it, redemptions take
    from it and cancellations give back. `valid_from`/`valid_until` bound when it can be redeemed
    (null: open), `min_tier` the lowest effective tier that may redeem it (null: everyone)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    cost_points: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="points per unit")]
    kind: RewardKind
    # ≥ 0 is checked by the service (422 `invalid-stock`): Litestar drops a 0 minimum of an optional field
    stock: (
        Annotated[int, msgspec.Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="units left, ≥ 0; null = unlimited")]
        | None
    ) = None
    per_member_limit: (
        Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="units per member; null = no limit")] | None
    ) = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    min_tier: Annotated[str, msgspec.Meta(pattern=CODE_PATTERN, min_length=1, max_length=64)] | None = None
    payload: Annotated[dict[str, Any], msgspec.Meta(max_length=100, description="free-form, for the shop")] = (
        msgspec.field(default_factory=dict)
    )
    active: bool = True


class Reward(msgspec.Struct, kw_only=True):
    code: str
    name: str
    cost_points: int
    kind: RewardKind
    stock: int | None
    per_member_limit: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    min_tier: str | None
    payload: dict[str, Any]
    active: bool
    version: int
    updated_at: datetime


class RedemptionIn(msgspec.Struct, kw_only=True):
    """POST body: `redemption_id` makes it idempotent; it costs cost_points × quantity."""

    redemption_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    reward_code: Annotated[str, msgspec.Meta(pattern=CODE_PATTERN, min_length=1, max_length=64)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1


class CancelIn(msgspec.Struct, kw_only=True):
    """A cancellation carries nothing: `{}`."""


class Redemption(msgspec.Struct, kw_only=True):
    """A redemption: `points` = cost_points × quantity at the time it was made."""

    redemption_id: str
    member_id: str
    reward_code: str
    quantity: int
    points: int
    status: RedemptionStatus
    created_at: datetime
    cancelled_at: datetime | None
