"""Plan durations (§5.3): whole calendar months in the tenant's zone, clamped to the month's end."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.loyalty.plans.service import plan_end

ZONES = st.sampled_from(["Asia/Shanghai", "UTC", "Pacific/Auckland", "America/Sao_Paulo"])
STARTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2900, 12, 31), timezones=st.just(UTC))
MONTHS = {"P1M": 1, "P3M": 3, "P1Y": 12}


@given(starts=STARTS, duration=st.sampled_from(sorted(MONTHS)), zone=ZONES)
def test_a_plan_ends_on_the_same_local_day_or_the_month_end(starts: datetime, duration: str, zone: str) -> None:
    ends = plan_end(starts, duration, zone)
    assert ends is not None and ends > starts
    local_start, local_end = starts.astimezone(ZoneInfo(zone)), ends.astimezone(ZoneInfo(zone))
    months = (local_end.year - local_start.year) * 12 + local_end.month - local_start.month
    assert months == MONTHS[duration]
    assert local_end.day == min(local_start.day, calendar.monthrange(local_end.year, local_end.month)[1])
    # the wall-clock time is kept unless a DST change removed it that day
    if local_end.utcoffset() == local_start.utcoffset():
        assert local_end.time() == local_start.time()


@given(starts=STARTS, zone=ZONES)
def test_lifetime_never_ends(starts: datetime, zone: str) -> None:
    assert plan_end(starts, "lifetime", zone) is None
