"""The wire shapes of members, bindings, distributors, teams, leaderboards and loyalty events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "ID_PATTERN",
    "INVITE_CODE_PATTERN",
    "Ancestor",
    "Balances",
    "Binding",
    "BindingIn",
    "Distributor",
    "DistributorIn",
    "DistributorInfo",
    "DistributorLevel",
    "DistributorLevelIn",
    "DistributorStatus",
    "Leaderboard",
    "LeaderboardEntry",
    "LoyaltyEventResult",
    "Member",
    "MemberIn",
    "Metric",
    "Period",
    "TeamCounts",
    "TeamMember",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Codes are issued upper-case from an unambiguous alphabet; input is matched case-insensitively.
INVITE_CODE_PATTERN = r"^[A-Za-z0-9]{1,32}$"

MemberId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
InviteCode = Annotated[str, msgspec.Meta(pattern=INVITE_CODE_PATTERN, min_length=1, max_length=32)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="the client device's id")]
Ip = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="the client's IP address")]
LevelCode = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
DistributorStatus = Literal["active", "suspended"]
Metric = Literal["invites", "commission", "team_sales"]
Period = Literal["day", "week", "month", "all"]


class MemberIn(msgspec.Struct, kw_only=True):
    """PUT body. With `invite_code` the new member is bound to that code's owner at `registered_at`."""

    registered_at: datetime
    invite_code: InviteCode | None = None
    device_id: DeviceId | None = None
    ip: Ip | None = None


class BindingIn(msgspec.Struct, kw_only=True):
    """POST body: exactly one of `invite_code` and `inviter_id` names the inviter."""

    invitee_id: MemberId
    occurred_at: datetime
    invite_code: InviteCode | None = None
    inviter_id: MemberId | None = None
    device_id: DeviceId | None = None
    ip: Ip | None = None


class Binding(msgspec.Struct, kw_only=True):
    """The invitee's binding after the request. `previous_inviter_id` is the inviter this request
    replaced: null for a first binding and for a repeat of the current one (which changes nothing)."""

    invitee_id: str
    inviter_id: str
    previous_inviter_id: str | None
    bound_at: datetime
    flagged: bool
    flag_reason: str | None


class Ancestor(msgspec.Struct, kw_only=True):
    level: int
    member_id: str


class DistributorInfo(msgspec.Struct, kw_only=True):
    """`status` null: never approved (under `everyone` such a member is still eligible)."""

    status: DistributorStatus | None
    level_code: str | None
    since: datetime | None
    eligible: bool


class Balances(msgspec.Struct, kw_only=True):
    """Commission in minor units of `currency`; `withdrawn` is the total of completed withdrawals."""

    currency: str
    frozen: int
    available: int
    withdrawing: int
    withdrawn: int
    debt: int


class TeamCounts(msgspec.Struct, kw_only=True):
    level_1: int
    level_2: int
    level_3: int


class Member(msgspec.Struct, kw_only=True):
    member_id: str
    invite_code: str
    registered_at: datetime
    inviter_id: str | None
    bound_at: datetime | None
    flagged: bool
    flag_reason: str | None
    ancestors: list[Ancestor]
    distributor: DistributorInfo
    balances: Balances
    team: TeamCounts
    order_count: int
    paid_amount: int


class DistributorLevelIn(msgspec.Struct, kw_only=True):
    """PUT body: one rate per level (1 to 3 levels), each 0..10000 bps, summing to at most 10000."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rank: Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="higher ranks are higher levels")]
    # Item constraints are checked by the service (422): Litestar's schema drops them from list items.
    rates_bps: Annotated[list[int], msgspec.Meta(min_length=1, max_length=100, description="bps per level")]


class DistributorLevel(msgspec.Struct, kw_only=True):
    code: str
    name: str
    rank: int
    rates_bps: list[int]
    version: int
    updated_at: datetime


class DistributorIn(msgspec.Struct, kw_only=True):
    """PUT body: replaces the member's distributor status and level (null or absent: no level)."""

    status: DistributorStatus
    level_code: LevelCode | None = None


class Distributor(msgspec.Struct, kw_only=True):
    member_id: str
    status: DistributorStatus | None
    level_code: str | None
    since: datetime | None
    eligible: bool


class TeamMember(msgspec.Struct, kw_only=True):
    """`joined_at` is when this invitee bound to their current inviter."""

    member_id: str
    level: int
    joined_at: datetime
    order_count: int
    paid_amount: int


class LeaderboardEntry(msgspec.Struct, kw_only=True):
    rank: int
    member_id: str
    score: int


class Leaderboard(msgspec.Struct, kw_only=True):
    """One page of a ranking; `period_start`/`period_end` (exclusive) are null for `all`."""

    metric: Metric
    period: Period
    period_start: datetime | None
    period_end: datetime | None
    items: list[LeaderboardEntry]
    next_cursor: str | None = None


class LoyaltyEventResult(msgspec.Struct, kw_only=True):
    event_id: str
    action: Literal["distributor-activated", "ignored"]
    member_id: str | None = None
