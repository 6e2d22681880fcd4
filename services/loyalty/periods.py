"""Calendar arithmetic in the tenant's time zone: month steps that clamp to the month's end, lot
expiry (§5.6) and the tier window's start (§5.2). Pure functions; no I/O.

An expiry time is the first instant at which the points are no longer available: "the end of
January" is 1 February 00:00 local.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.loyalty.program.schemas import ExpiryPolicy, TierWindow

__all__ = ["add_months", "expires_at", "month_start", "window_start"]


def add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock time `months` later, clamped to the target month's last day (Jan 31 + 1 =
    Feb 28 or 29). Works on the datetime's own time zone: pass a local time."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def month_start(year: int, month: int, zone: ZoneInfo) -> datetime:
    """00:00 local on the first of the month, in UTC; month may run past 12."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def expires_at(policy: ExpiryPolicy, earned_at: datetime, timezone: str) -> datetime | None:
    """When points earned at `earned_at` expire under `policy` (normalised: `n` explicit); None = never."""
    zone = ZoneInfo(timezone)
    local = earned_at.astimezone(zone)
    if policy.kind == "never":
        return None
    n = policy.n if policy.n is not None else 0
    if policy.kind == "rolling_days":
        # n calendar days of wall-clock time (a DST day is 23 or 25 hours long)
        return (local.replace(tzinfo=None) + timedelta(days=n)).replace(tzinfo=zone).astimezone(UTC)
    if policy.kind == "end_of_month_after":
        target = add_months(local, n)
        return month_start(target.year, target.month + 1, zone)
    return month_start(local.year + n + 1, 1, zone)  # end_of_year


def window_start(window: TierWindow, as_of: datetime, timezone: str) -> datetime | None:
    """The earliest earning time that still qualifies at `as_of`; None = all of them (`lifetime`)."""
    if window.kind == "lifetime":
        return None
    zone = ZoneInfo(timezone)
    local = as_of.astimezone(zone)
    if window.kind == "calendar_year":
        return month_start(local.year, 1, zone)
    n = window.n if window.n is not None else 365
    return (local.replace(tzinfo=None) - timedelta(days=n)).replace(tzinfo=zone).astimezone(UTC)
