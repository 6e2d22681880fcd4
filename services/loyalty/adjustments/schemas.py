"""The adjustments' wire shapes (§5.9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = ["ID_PATTERN", "Adjustment", "AdjustmentIn", "AdjustmentResult", "TierMove"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class AdjustmentIn(msgspec.Struct, kw_only=True):
    """POST body. `points` > 0 credits available points (open debt repaid first), < 0 takes them back
    from the member's available points, first-expiring first; 0 is refused (422 `invalid-amount`).
    `reason` must say something (422 `reason-required` when empty or blank). `qualifying: true` also
    counts the points (±) toward the member's tier."""

    adjustment_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    points: Annotated[int, msgspec.Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="± points; not 0")]
    # emptiness is checked by the service (422): a blank reason is a refused rule, not a malformed body
    reason: Annotated[str, msgspec.Meta(max_length=500)]
    qualifying: bool = False


class Adjustment(msgspec.Struct, kw_only=True):
    """A recorded adjustment; `operator` is the id of the admin key that made it, `entry_id` its
    ledger entry (kind `points.adjust`)."""

    adjustment_id: str
    member_id: str
    points: int
    reason: str
    qualifying: bool
    operator: str
    entry_id: int
    created_at: datetime


class TierMove(msgspec.Struct, kw_only=True):
    from_tier: str
    to_tier: str


class AdjustmentResult(Adjustment, kw_only=True):
    """The POST answer: the adjustment, plus where a credit went (`debt_repaid` to open debt, the rest
    to the new lot `lot_id`) and the earned-tier upgrade a qualifying credit caused, if any."""

    debt_repaid: int
    lot_id: int | None
    tier_change: TierMove | None
