"""The programme's wire shapes (§6.1). Defaults are the design's: depth 2, L1 10 %, L2 5 %."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = ["BindingPolicy", "Program", "ProgramConfig", "ProgramSettings"]

Bps = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points: 10000 = 100 %")]
Money = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="minor units (fen)")]


class BindingPolicy(msgspec.Struct, kw_only=True, frozen=True):
    mode: Literal["first_bind", "register_window", "override"] = "first_bind"
    register_window_seconds: Annotated[int, msgspec.Meta(ge=1, le=31_536_000)] = 30
    lifetime_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] | None = None
    daily_cap_per_inviter: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class ProgramSettings(msgspec.Struct, kw_only=True, frozen=True):
    depth: Annotated[int, msgspec.Meta(ge=1, le=100, description="levels paid: 1 to 3 (more is refused)")] = 2
    # Item and key constraints are checked by the service (422): Litestar's schema drops them.
    level_rates_bps: Annotated[list[int], msgspec.Meta(min_length=1, max_length=100)] = msgspec.field(
        default_factory=lambda: [1000, 500]
    )
    freeze_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 7
    freeze_from: Literal["paid", "received"] = "paid"
    min_withdrawal: Money = 100
    withdrawal_fee_bps: Bps = 0
    auto_approve_limit: Money = 0
    eligibility: Literal["everyone", "approved"] = "everyone"
    self_purchase_commission: bool = False
    clawback: Literal["debt", "cap"] = "debt"
    binding: BindingPolicy = msgspec.field(default_factory=BindingPolicy)
    category_rates_bps: Annotated[dict[str, list[int]], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=dict
    )
    excluded_categories: Annotated[list[str], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)


class ProgramConfig(ProgramSettings, kw_only=True, frozen=True):
    """PUT body. `loyalty_events_secret` verifies loyalty's signed events at POST /v1/events/loyalty."""

    loyalty_events_secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)] | None = None


class Program(msgspec.Struct, kw_only=True, frozen=True):
    """GET view: the settings, the rule version (0 = defaults, never configured); no secret."""

    version: int
    updated_at: datetime | None
    config: ProgramSettings
    loyalty_events_secret_set: bool
