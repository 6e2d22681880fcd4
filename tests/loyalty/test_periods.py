"""Calendar arithmetic (§3.4, §5.3, §5.6): month steps clamp to the month's end; expiry and the tier
window are computed in the tenant's time zone."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.loyalty.periods import add_months, expires_at, window_start
from services.loyalty.program.schemas import ExpiryPolicy, TierWindow

ZONES = st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin", "Pacific/Auckland"])
MOMENTS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2900, 12, 31), timezones=st.just(UTC))
SHANGHAI = "Asia/Shanghai"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2026-01-31T10:00:00", 1, "2026-02-28T10:00:00"),
        ("2028-01-31T10:00:00", 1, "2028-02-29T10:00:00"),
        ("2026-03-31T00:00:00", 3, "2026-06-30T00:00:00"),
        ("2026-01-31T00:00:00", 12, "2027-01-31T00:00:00"),
        ("2028-02-29T00:00:00", 12, "2029-02-28T00:00:00"),
        ("2026-12-15T00:00:00", 1, "2027-01-15T00:00:00"),
        ("2026-03-31T00:00:00", -1, "2026-02-28T00:00:00"),
    ],
)
def test_month_steps_clamp_to_the_month_end(start: str, months: int, expected: str) -> None:
    assert add_months(datetime.fromisoformat(start), months) == datetime.fromisoformat(expected)


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2900, 12, 31)), months=st.integers(0, 1200)
)
def test_a_month_step_keeps_the_day_unless_the_month_is_shorter(moment: datetime, months: int) -> None:
    result = add_months(moment, months)
    assert (result.year * 12 + result.month) - (moment.year * 12 + moment.month) == months
    assert result.day == min(moment.day, calendar.monthrange(result.year, result.month)[1])
    assert result.time() == moment.time()


@pytest.mark.parametrize(
    ("policy", "earned", "expected"),
    [
        (ExpiryPolicy(kind="never"), "2026-01-15T10:00:00+08:00", None),
        (ExpiryPolicy(kind="end_of_month_after", n=12), "2026-01-15T10:00:00+08:00", "2027-02-01T00:00:00+08:00"),
        # 20:00 UTC on Jan 31 is already February in Shanghai: February's points
        (ExpiryPolicy(kind="end_of_month_after", n=12), "2026-01-31T20:00:00+00:00", "2027-03-01T00:00:00+08:00"),
        (ExpiryPolicy(kind="end_of_month_after", n=0), "2026-01-31T23:59:59+08:00", "2026-02-01T00:00:00+08:00"),
        (ExpiryPolicy(kind="end_of_month_after", n=1), "2026-01-31T12:00:00+08:00", "2026-03-01T00:00:00+08:00"),
        (ExpiryPolicy(kind="rolling_days", n=30), "2026-01-15T10:00:00+08:00", "2026-02-14T10:00:00+08:00"),
        (ExpiryPolicy(kind="end_of_year", n=1), "2026-12-31T23:00:00+08:00", "2028-01-01T00:00:00+08:00"),
        (ExpiryPolicy(kind="end_of_year", n=0), "2026-06-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00"),
    ],
)
def test_expiry_examples(policy: ExpiryPolicy, earned: str, expected: str | None) -> None:
    result = expires_at(policy, _utc(earned), SHANGHAI)
    assert result == (None if expected is None else _utc(expected))


@given(earned=MOMENTS, months=st.integers(0, 1200), zone=ZONES)
def test_end_of_month_after_is_the_first_instant_of_a_later_month(earned: datetime, months: int, zone: str) -> None:
    result = expires_at(ExpiryPolicy(kind="end_of_month_after", n=months), earned, zone)
    assert result is not None and result > earned
    local, last = result.astimezone(ZoneInfo(zone)), (result - timedelta(microseconds=1)).astimezone(ZoneInfo(zone))
    assert (local.day, local.hour, local.minute) == (1, 0, 0) or local.utcoffset() != last.utcoffset()
    earned_local = earned.astimezone(ZoneInfo(zone))
    assert (last.year * 12 + last.month) - (earned_local.year * 12 + earned_local.month) == months


@given(earned=MOMENTS, days=st.integers(1, 36_500), zone=ZONES)
def test_rolling_days_keep_the_local_wall_clock(earned: datetime, days: int, zone: str) -> None:
    result = expires_at(ExpiryPolicy(kind="rolling_days", n=days), earned, zone)
    assert result is not None and result > earned
    start, end = earned.astimezone(ZoneInfo(zone)), result.astimezone(ZoneInfo(zone))
    assert (end.date() - start.date()).days == days
    # a wall-clock time that does not exist on the target day (a DST gap) moves by the gap at most
    assert abs((end.replace(tzinfo=None) - start.replace(tzinfo=None)) - timedelta(days=days)) <= timedelta(hours=1)


@given(earned=MOMENTS, years=st.integers(0, 100), zone=ZONES)
def test_end_of_year_is_new_year_local(earned: datetime, years: int, zone: str) -> None:
    result = expires_at(ExpiryPolicy(kind="end_of_year", n=years), earned, zone)
    assert result is not None
    local = result.astimezone(ZoneInfo(zone))
    assert (local.year, local.month, local.day, local.hour) == (
        earned.astimezone(ZoneInfo(zone)).year + years + 1,
        1,
        1,
        0,
    )


def test_tier_windows() -> None:
    as_of = _utc("2026-11-23T10:00:00+08:00")
    assert window_start(TierWindow(kind="lifetime"), as_of, SHANGHAI) is None
    assert window_start(TierWindow(kind="calendar_year"), as_of, SHANGHAI) == _utc("2026-01-01T00:00:00+08:00")
    assert window_start(TierWindow(kind="rolling_days", n=365), as_of, SHANGHAI) == _utc("2025-11-23T10:00:00+08:00")
    # 16:30 UTC on Dec 31 is 00:30 on Jan 1 in Shanghai: the new year
    assert window_start(TierWindow(kind="calendar_year"), _utc("2026-12-31T16:30:00+00:00"), SHANGHAI) == _utc(
        "2027-01-01T00:00:00+08:00"
    )
