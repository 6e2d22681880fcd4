"""The members' wire shapes (§5.9)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ID_PATTERN",
    "AccountName",
    "Balances",
    "EarnedTier",
    "EffectiveTier",
    "ExpiringPoints",
    "Member",
    "MemberIn",
    "NextTier",
    "PlanTier",
    "Qualifying",
    "Transaction",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
AccountName = Literal["points", "pending", "held", "debt"]


class MemberIn(msgspec.Struct, kw_only=True):
    """PUT body: replaces the member's profile attributes (free-form JSON for the shop) and join time."""

    joined_at: datetime
    attributes: Annotated[dict[str, Any], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=dict)


class EarnedTier(msgspec.Struct, kw_only=True):
    """The tier qualifying points earned; `since` is null for the entry tier never left."""

    code: str
    since: datetime | None


class PlanTier(msgspec.Struct, kw_only=True):
    """The tier an active paid plan grants; `until` null = a lifetime plan."""

    code: str
    plan_code: str
    subscription_id: str
    until: datetime | None


class EffectiveTier(msgspec.Struct, kw_only=True):
    """The higher of the earned tier and the plan's; `source` says which applies, `until` when it ends
    (null: the earned tier, which lasts until a downgrade, or a lifetime plan)."""

    code: str
    name: str
    rank: int
    multiplier_bps: int
    source: Literal["earned", "plan"]
    until: datetime | None
    earned: EarnedTier
    plan: PlanTier | None


class Balances(msgspec.Struct, kw_only=True):
    """Points: `available` to spend, `pending` in the return window, `held` by checkouts, `debt` owed."""

    available: int
    pending: int
    held: int
    debt: int


class ExpiringPoints(msgspec.Struct, kw_only=True):
    """Points of live lots that expire at `expires_at`; `last_day` is the tenant-local last day of use."""

    expires_at: datetime
    last_day: date
    points: int


class NextTier(msgspec.Struct, kw_only=True):
    code: str
    name: str
    threshold: int
    points_needed: int


class Qualifying(msgspec.Struct, kw_only=True):
    """Qualifying points earned since `window_start` (null: lifetime) and what the next tier needs."""

    points: int
    window_start: datetime | None
    next_tier: NextTier | None


class Member(msgspec.Struct, kw_only=True):
    member_id: str
    attributes: dict[str, Any]
    joined_at: datetime
    tier: EffectiveTier
    balances: Balances
    expiring: list[ExpiringPoints]
    qualifying: Qualifying
    version: int
    created_at: datetime
    updated_at: datetime


class Transaction(msgspec.Struct, kw_only=True):
    """One ledger line of the member's account: `amount` signed on the account's normal side (+ adds to
    it), `balance_after` the account's balance after this line."""

    entry_id: int
    kind: str
    reason: str | None
    source_ref: str | None
    effective_at: datetime
    amount: int
    balance_after: int
