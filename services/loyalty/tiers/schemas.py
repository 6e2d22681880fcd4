"""The tiers' wire shapes (§5.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = ["CODE_PATTERN", "Tier", "TierHistoryEntry", "TierIn"]

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class TierIn(msgspec.Struct, kw_only=True):
    """PUT body. Ranks are unique; thresholds (qualifying points) rise strictly with rank and the lowest
    rank's is 0 (every member has a tier)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rank: Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="higher ranks are higher tiers")]
    threshold: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="qualifying points to reach it")]
    multiplier_bps: Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="earning: 10000 = 1×")] = 10_000
    benefits: Annotated[dict[str, Any], msgspec.Meta(max_length=100, description="free-form, for the shop")] = (
        msgspec.field(default_factory=dict)
    )


class Tier(msgspec.Struct, kw_only=True):
    code: str
    name: str
    rank: int
    threshold: int
    multiplier_bps: int
    benefits: dict[str, Any]
    version: int
    updated_at: datetime


class TierHistoryEntry(msgspec.Struct, kw_only=True):
    """One change of tier: `source` `earned` moves the earned tier (upgrade, downgrade...), `plan` the
    effective tier a plan granted (plan_started, plan_ended)."""

    history_id: int
    from_tier: str | None
    to_tier: str | None
    source: Literal["earned", "plan"]
    reason: Literal["upgrade", "downgrade", "plan_started", "plan_ended", "refund", "admin"]
    occurred_at: datetime
    created_at: datetime
