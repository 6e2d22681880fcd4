"""The task calendar and streak arithmetic (services/loyalty/tasks/rules.py), against simple models."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.loyalty.tasks import rules

ZONES = st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin", "Pacific/Chatham"])
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
PERIODS = st.sampled_from(["day", "week", "month"])
RESETS = st.sampled_from(["gap", "weekly", "monthly"])


@given(MOMENTS, PERIODS, ZONES)
def test_the_next_period_starts_exactly_where_the_key_changes(moment: datetime, period: str, zone: str) -> None:
    day = rules.local_day(moment, zone)
    start = rules.next_period_start(period, day, zone)
    assert start is not None and start > moment
    key = rules.period_key(period, day)
    assert rules.period_key(period, rules.local_day(start - timedelta(microseconds=1), zone)) == key
    assert rules.period_key(period, rules.local_day(start, zone)) != key


def test_period_keys() -> None:
    day = date(2026, 11, 23)
    assert [rules.period_key(p, day) for p in ("day", "week", "month", "lifetime")] == [
        "2026-11-23",
        "2026-W48",
        "2026-11",
        "lifetime",
    ]
    assert rules.next_period_start("lifetime", day, "UTC") is None


def _model_length(days: list[date], reset: str) -> int:
    """The run of consecutive days (each step within one reset period) ending at the last day."""
    length = 1
    for earlier, later in zip(days, days[1:], strict=False):
        length = length + 1 if later - earlier == timedelta(days=1) and rules.same_run(earlier, later, reset) else 1
    return length


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40), RESETS, st.dates())
def test_a_streak_counts_the_run_of_consecutive_days(steps: list[int], reset: str, start: date) -> None:
    """Completions in date order (a step of 0 = the same day again) give the model's run length, and a
    bonus day is reached only by a step that grows the streak."""
    day, length, last = start, 0, None
    distinct = []
    for step in steps:
        try:
            day = day + timedelta(days=step)
        except OverflowError:
            return
        result = rules.step_streak(length, last, day, reset)
        if not distinct or distinct[-1] != day:
            distinct.append(day)
            assert result.advanced
        else:
            assert not result.advanced and result.streak_day == length
        length, last = result.length, result.last_day
        assert length == _model_length(distinct, reset)
        assert rules.current_length(length, last, day, reset) == length


def test_a_late_completion_leaves_the_streak_alone() -> None:
    step = rules.step_streak(4, date(2026, 5, 4), date(2026, 5, 1), "gap")
    assert (step.length, step.last_day, step.streak_day, step.advanced) == (4, date(2026, 5, 4), None, False)


def test_the_current_streak_breaks_after_a_missed_day_or_a_reset_boundary() -> None:
    sunday, monday = date(2026, 11, 22), date(2026, 11, 23)
    assert rules.current_length(5, sunday, monday, "gap") == 5
    assert rules.current_length(5, sunday, monday, "weekly") == 0
    assert rules.current_length(5, sunday - timedelta(days=1), monday, "gap") == 0
    assert rules.current_length(0, None, monday, "gap") == 0


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**6))
def test_a_multiplier_floors(points: int, bps: int) -> None:
    got = rules.apply_multiplier(points, bps)
    assert got * 10_000 <= points * bps < (got + 1) * 10_000


def test_the_best_applicable_multiplier_wins() -> None:
    table = {"tiers": {"premium": 15000, "elite": 20000}, "plans": {"vip": 30000}}
    assert rules.multiplier_bps(table, ["normal"], []) == 10_000
    assert rules.multiplier_bps(table, ["premium"], []) == 15_000
    assert rules.multiplier_bps(table, ["premium", "elite"], []) == 20_000
    assert rules.multiplier_bps(table, ["premium"], ["vip"]) == 30_000
    assert rules.multiplier_bps({"tiers": {"normal": 0}}, ["normal"], []) == 0
