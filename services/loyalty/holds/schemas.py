"""The holds' wire shapes (§5.8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = ["ID_PATTERN", "MAX_HOLD_SECONDS", "CaptureIn", "Hold", "HoldIn", "HoldStatus", "VoidIn"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_HOLD_SECONDS = 30 * 86_400  # a checkout that takes longer than a month is not a checkout

HoldStatus = Literal["held", "captured", "voided", "expired"]


class HoldIn(msgspec.Struct, kw_only=True):
    """POST body: `hold_id` makes it idempotent; the hold lapses `expires_in_seconds` after it is made."""

    hold_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    points: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
    expires_in_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_HOLD_SECONDS)] = 900
    order_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="the shop's order")] | None = None


class CaptureIn(msgspec.Struct, kw_only=True):
    """Spend `points` (at most what is held); the rest goes back to available."""

    points: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]


class VoidIn(msgspec.Struct, kw_only=True):
    """A void carries nothing: `{}`."""


class Hold(msgspec.Struct, kw_only=True):
    """A hold: `points` reserved; once captured, `captured_points` were spent and `released_points` went
    back to available (all of them on a void or an expiry)."""

    hold_id: str
    member_id: str
    points: int
    captured_points: int
    released_points: int
    order_ref: str | None
    status: HoldStatus
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None
