"""The earning rules' wire shapes (§5.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = ["CODE_PATTERN", "Condition", "EarningRule", "EarningRuleIn", "RuleKind"]

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
RuleKind = Literal["multiplier", "fixed_per_unit"]
# Optional numbers: Litestar's schema drops their bounds, so the service checks them (422).
Points = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]


class Condition(msgspec.Struct, kw_only=True):
    """Which items a rule applies to: an item matches when its category is in `categories` or its sku
    is in `skus`; both empty = every item. Each entry 1..64 characters, at most 100 of each."""

    # Item constraints are checked by the service (422): Litestar's schema drops them from list items.
    categories: Annotated[list[str], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    skus: Annotated[list[str], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class EarningRuleIn(msgspec.Struct, kw_only=True):
    """PUT body. `multiplier` scales the matching items' base points (`multiplier_bps`, 20000 = double,
    0 = none); `fixed_per_unit` adds `points_per_unit` × quantity per matching item. Caps limit what the
    rule adds: per order, and per member per tenant-local day. Valid in [valid_from, valid_until)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: RuleKind
    condition: Condition = msgspec.field(default_factory=Condition)
    multiplier_bps: Points | None = None
    points_per_unit: Points | None = None
    cap_per_order: Points | None = None
    cap_per_member_day: Points | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    active: bool = True


class EarningRule(msgspec.Struct, kw_only=True):
    code: str
    name: str
    kind: RuleKind
    condition: Condition
    multiplier_bps: int | None
    points_per_unit: int | None
    cap_per_order: int | None
    cap_per_member_day: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    active: bool
    version: int
    updated_at: datetime
