"""Leaderboards (§6.6): a ranking per metric over the tenant-local day, ISO week, month, or all time.

- `invites`: members bound to the inviter (their current inviter) with `bound_at` in the period.
- `commission`: commission accrued to the member (amount − reversed) on items created in the period.
- `team_sales`: paid − refunded amount of orders paid in the period by the member's current team (levels 1..3).
Ranked by score descending, then member id; members with no score are not listed.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import msgspec

from services.referral.members import repository
from services.referral.members.schemas import Leaderboard, LeaderboardEntry, Metric, Period
from shared.errors import DomainError
from shared.pagination import decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = ["leaderboard", "period_bounds"]

_ALL_TIME = (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
_TOP = (2**63 - 1, "")

_QUERIES: dict[str, Callable[..., Awaitable[list[asyncpg.Record]]]] = {
    "invites": repository.leaderboard_invites,
    "commission": repository.leaderboard_commission,
    "team_sales": repository.leaderboard_team_sales,
}


def _parse_time(text: str) -> datetime:
    try:
        return msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise DomainError("invalid-timestamp", 422, f"{text} is not an RFC 3339 time") from None


def period_bounds(period: Period, as_of: datetime, timezone: str) -> tuple[datetime, datetime] | None:
    """[start, end) of the tenant-local period that contains `as_of`; None for all time."""
    if period == "all":
        return None
    tz = zoneinfo.ZoneInfo(timezone)
    today = as_of.astimezone(tz).date()
    if period == "day":
        start, end = today, today + timedelta(days=1)
    elif period == "week":  # ISO weeks start on Monday
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    else:
        start = today.replace(day=1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return datetime.combine(start, time(), tz), datetime.combine(end, time(), tz)


async def leaderboard(
    conn: asyncpg.Connection,
    tenant_id: str,
    metric: Metric,
    period: Period,
    as_of: str | None,
    limit: int,
    cursor: str | None,
) -> Leaderboard:
    after = decode_cursor(cursor, (int, str, int)) if cursor else (*_TOP, 0)
    if not (0 <= after[0] <= _TOP[0] and 0 <= after[2] < 2**53) or "\x00" in after[1]:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    moment = datetime.now(UTC) if as_of is None else checked_time(_parse_time(as_of), "as_of")
    timezone = await repository.tenant_timezone(conn, tenant_id)
    if timezone is None:
        raise DomainError("tenant-not-found", 404, f"tenant {tenant_id} does not exist")
    bounds = period_bounds(period, moment, timezone)
    starts, ends = bounds or _ALL_TIME
    rows = await _QUERIES[metric](conn, tenant_id, starts, ends, (after[0], after[1]), limit + 1)
    items = [
        LeaderboardEntry(rank=after[2] + i, member_id=row["member_id"], score=row["score"])
        for i, row in enumerate(rows[:limit], start=1)
    ]
    last = items[-1] if items else None
    next_cursor = encode_cursor([last.score, last.member_id, last.rank]) if last and len(rows) > limit else None
    return Leaderboard(
        metric=metric,
        period=period,
        period_start=bounds[0] if bounds else None,
        period_end=bounds[1] if bounds else None,
        items=items,
        next_cursor=next_cursor,
    )
