"""The programme's wire shapes (§5.1), with the design's defaults.

Policies with a parameter (`rolling_days:N`, `end_of_month_after:N`) are `{kind, n}` structs: `n` is
required by the kinds that take one and refused by the others (422 `invalid-policy`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.ledger import MAX_AMOUNT

__all__ = ["ExpiryPolicy", "Program", "ProgramConfig", "TierWindow"]

Bps = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points: 10000 = 100 %")]
Days = Annotated[int, msgspec.Meta(ge=0, le=3650)]


class ExpiryPolicy(msgspec.Struct, kw_only=True, frozen=True):
    """When a lot's points expire, from the earning time, in the tenant's time zone:
    `never`; `rolling_days` (n days later); `end_of_month_after` (at the end of the month n months
    after the earning month); `end_of_year` (at the end of the calendar year n years after the earning
    year: points earned in 2026 expire at the end of 2027 with n = 1, the default; n = 0: the earning
    year). An absent n takes the kind's default (365 days, 12 months, 1 year)."""

    kind: Literal["never", "rolling_days", "end_of_month_after", "end_of_year"]
    # the lower bound per kind is checked by the service (422): Litestar drops a minimum of 0 here
    n: Annotated[int, msgspec.Meta(ge=-1_000_000, le=36_500)] | None = None


class TierWindow(msgspec.Struct, kw_only=True, frozen=True):
    """Which earnings qualify for a tier: the last n days (`rolling_days`), the tenant-local calendar
    year (`calendar_year`), or all of them (`lifetime`). An absent n for `rolling_days` is 365."""

    kind: Literal["rolling_days", "calendar_year", "lifetime"]
    # the lower bound per kind is checked by the service (422): Litestar drops a minimum of 0 here
    n: Annotated[int, msgspec.Meta(ge=-1_000_000, le=36_500)] | None = None


class ProgramConfig(msgspec.Struct, kw_only=True, frozen=True):
    """PUT body and the `config` of the GET view. Earning: floor(paid × earn_points / earn_per_amount)
    (default 1 point per 100 fen = 1 yuan). Holds: `money_points` points pay `money_amount` minor units."""

    earn_points: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1
    earn_per_amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="minor units (fen)")] = 100
    pending_days: Days = 7
    expiry: ExpiryPolicy = msgspec.field(default_factory=lambda: ExpiryPolicy(kind="end_of_month_after", n=12))
    tier_window: TierWindow = msgspec.field(default_factory=lambda: TierWindow(kind="rolling_days", n=365))
    downgrade_mode: Literal["one_down", "to_qualified"] = "one_down"
    downgrade_grace_days: Days = 30
    negative_balance: Literal["debt", "cap"] = "debt"
    max_points_share_bps: Bps = 10_000
    money_points: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 100
    money_amount: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000, description="minor units (fen)")] = 100
    expiry_reminder_days: Days = 30


class Program(msgspec.Struct, kw_only=True, frozen=True):
    """GET/PUT view: the configuration and its version (0 = the defaults, never configured)."""

    version: int
    updated_at: datetime | None
    config: ProgramConfig
