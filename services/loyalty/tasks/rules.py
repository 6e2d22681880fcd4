"""Task arithmetic in the tenant's calendar (§5.5): period keys, the next period's start, streak steps,
bonuses and multipliers. Pure functions; no I/O.

Weeks are ISO weeks (Monday to Sunday, `2026-W48`); days, weeks and months are tenant-local.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

__all__ = [
    "NEUTRAL_BPS",
    "StreakStep",
    "apply_multiplier",
    "bonus_for",
    "current_length",
    "local_day",
    "multiplier_bps",
    "next_bonus",
    "next_period_start",
    "period_key",
    "same_run",
    "step_streak",
]

NEUTRAL_BPS = 10_000  # 1×


def local_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


def period_key(period: str, day: date) -> str:
    """`2026-11-23` (day), `2026-W48` (ISO week, with the ISO year), `2026-11` (month), `lifetime`."""
    if period == "day":
        return day.isoformat()
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return "lifetime"


def next_period_start(period: str, day: date, timezone: str) -> datetime | None:
    """00:00 tenant time of the period after the one holding `day`, in UTC; None for `lifetime`."""
    if period == "day":
        start = day + timedelta(days=1)
    elif period == "week":
        start = day + timedelta(days=7 - day.weekday())
    elif period == "month":
        start = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    else:
        return None
    return datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def same_run(earlier: date, later: date, reset: str) -> bool:
    """Whether a streak may run on from `earlier` to `later` under the reset rule (gap: always)."""
    if reset == "weekly":
        return earlier.isocalendar()[:2] == later.isocalendar()[:2]
    if reset == "monthly":
        return (earlier.year, earlier.month) == (later.year, later.month)
    return True


class StreakStep(msgspec.Struct, frozen=True):
    """A completion's effect on the streak: the new length and last day, the completion's streak day
    (None for a day before the streak's last one) and whether the streak grew a day (bonuses pay then)."""

    length: int
    last_day: date
    streak_day: int | None
    advanced: bool


def step_streak(length: int, last_day: date | None, day: date, reset: str) -> StreakStep:
    """The streak after a completion on local `day`: the next day in the same run adds one, the same day
    changes nothing, a gap or a reset boundary starts again at 1. A late completion (before the last day)
    leaves the streak alone: days already counted are not rewritten."""
    if last_day is None or length == 0:
        return StreakStep(1, day, 1, True)
    if day < last_day:
        return StreakStep(length, last_day, None, False)
    if day == last_day:
        return StreakStep(length, last_day, length, False)
    if day == last_day + timedelta(days=1) and same_run(last_day, day, reset):
        return StreakStep(length + 1, day, length + 1, True)
    return StreakStep(1, day, 1, True)


def current_length(length: int, last_day: date | None, today: date, reset: str) -> int:
    """The streak as of `today`: alive if completed today, or yesterday in the same run; else 0."""
    if last_day is None:
        return 0
    if last_day >= today:
        return length
    if last_day == today - timedelta(days=1) and same_run(last_day, today, reset):
        return length
    return 0


def bonus_for(bonuses: list[dict[str, int]], streak_day: int) -> int:
    return sum(b["points"] for b in bonuses if b["day"] == streak_day)


def next_bonus(bonuses: list[dict[str, int]], length: int) -> dict[str, int] | None:
    """The first configured bonus above the current length."""
    ahead = [b for b in bonuses if b["day"] > length]
    return min(ahead, key=lambda b: b["day"]) if ahead else None


def multiplier_bps(multipliers: dict[str, Any], tier_codes: list[str], plan_codes: list[str]) -> int:
    """The best multiplier that applies: the member's tiers (earned and plan-granted) and active plans;
    1× when none is configured for them."""
    tiers, plans = multipliers.get("tiers", {}), multipliers.get("plans", {})
    found = [tiers[c] for c in tier_codes if c in tiers] + [plans[c] for c in plan_codes if c in plans]
    return max(found) if found else NEUTRAL_BPS


def apply_multiplier(points: int, bps: int) -> int:
    """floor(points × bps / 10000)."""
    return points * bps // NEUTRAL_BPS
