"""The tasks' wire shapes (§5.5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "CODE_PATTERN",
    "ID_PATTERN",
    "MAX_BPS",
    "MAX_TASK_POINTS",
    "Multipliers",
    "StreakBonus",
    "StreakProgress",
    "StreakRule",
    "Task",
    "TaskCompletion",
    "TaskCompletionIn",
    "TaskIn",
    "TaskKind",
    "TaskPeriod",
    "TaskProgress",
]

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_TASK_POINTS = 1_000_000_000  # per completion or bonus; × the largest multiplier stays far below 2^53
MAX_BPS = 1_000_000  # 100×
MAX_LIMIT = 10_000
MAX_COOLDOWN = 366 * 86_400
MAX_STREAK_DAY = 366

TaskKind = Literal["checkin", "post", "share", "profile", "custom"]
TaskPeriod = Literal["day", "week", "month", "lifetime"]
StreakReset = Literal["gap", "weekly", "monthly"]


class StreakBonus(msgspec.Struct, kw_only=True, frozen=True):
    """Extra points on the completion that makes the streak `day` days long."""

    day: Annotated[int, msgspec.Meta(ge=1, le=MAX_STREAK_DAY)]
    points: Annotated[int, msgspec.Meta(ge=1, le=MAX_TASK_POINTS)]


class StreakRule(msgspec.Struct, kw_only=True, frozen=True):
    """Continuous-day bonuses. `reset`: `gap` (a missed day starts again, the default), `weekly` (also at
    each Monday), `monthly` (also on each 1st), in the tenant's time zone."""

    bonuses: Annotated[list[StreakBonus], msgspec.Meta(min_length=1, max_length=50)]
    reset: StreakReset = "gap"


class Multipliers(msgspec.Struct, kw_only=True, frozen=True):
    """Basis points (10000 = 1×) by tier code (earned or plan-granted tier) and by plan code (an active
    subscription); the highest that applies wins, 1× if none does."""

    tiers: Annotated[dict[str, int], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=dict)
    plans: Annotated[dict[str, int], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=dict)


class TaskIn(msgspec.Struct, kw_only=True):
    """PUT body."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: TaskKind
    points: Annotated[int, msgspec.Meta(ge=0, le=MAX_TASK_POINTS, description="per completion, before multipliers")]
    period: TaskPeriod
    limit_per_period: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 1
    cooldown_seconds: Annotated[
        int, msgspec.Meta(ge=0, le=MAX_COOLDOWN, description="minimum time between two completions")
    ] = 0
    streak: StreakRule | None = None
    multipliers: Multipliers = msgspec.field(default_factory=Multipliers)
    active: bool = True


class Task(msgspec.Struct, kw_only=True):
    code: str
    name: str
    kind: TaskKind
    points: int
    period: TaskPeriod
    limit_per_period: int
    cooldown_seconds: int
    streak: StreakRule | None
    multipliers: Multipliers
    active: bool
    version: int
    updated_at: datetime


class TaskCompletionIn(msgspec.Struct, kw_only=True):
    """POST body; `completion_id` is the shop's id of the completion (idempotency key)."""

    completion_id: Annotated[str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
    task_code: Annotated[str, msgspec.Meta(pattern=CODE_PATTERN, min_length=1, max_length=64)]
    occurred_at: datetime


class TaskCompletion(msgspec.Struct, kw_only=True):
    """What one completion awarded: `points` (the task's points × `multiplier_bps`) + `streak_bonus` =
    `total`, all available at once in one lot expiring at `expires_at`."""

    completion_id: str
    member_id: str
    task_code: str
    occurred_at: datetime
    period_key: str
    sequence: int
    multiplier_bps: int
    points: int
    streak_day: int | None
    streak_bonus: int
    total: int
    expires_at: datetime | None
    entry_id: int | None


class StreakProgress(msgspec.Struct, kw_only=True):
    """`length` is 0 once the streak is broken (a missed day or a reset boundary since `last_day`)."""

    length: int
    longest: int
    last_day: date | None
    reset: StreakReset
    next_bonus: StreakBonus | None


class TaskProgress(msgspec.Struct, kw_only=True):
    """An active task for one member now: this period's completions against the limit, whether it can be
    completed now, else from when (`next_allowed_at`: cooldown end or the next period's start; null when
    never again, a used-up `lifetime` task), and the streak (null for tasks without streak bonuses)."""

    code: str
    name: str
    kind: TaskKind
    period: TaskPeriod
    period_key: str
    points: int
    multiplier_bps: int
    limit_per_period: int
    completed: int
    remaining: int
    available: bool
    next_allowed_at: datetime | None
    streak: StreakProgress | None
