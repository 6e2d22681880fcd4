"""The effective tier (§5.2): the higher of the earned tier and a running plan's, one rule for every caller."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.standing import effective_tier


def _tier(code: str, rank: int) -> Tier:
    return Tier(
        code=code,
        name=code,
        rank=rank,
        threshold=rank * 1000,
        multiplier_bps=10_000,
        benefits={},
        version=0,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


TIERS = [_tier("member", 0), _tier("silver", 1), _tier("gold", 2)]


@pytest.mark.parametrize(
    ("earned", "plan", "expected"),
    [
        (None, None, "member"),  # nothing earned: the entry tier
        ("ghost", None, "member"),  # a code no longer defined: the entry tier
        ("silver", None, "silver"),
        ("silver", "gold", "gold"),  # the plan grants more
        ("gold", "silver", "gold"),  # the plan grants less: the earned tier stands
        ("silver", "silver", "silver"),
        (None, "gold", "gold"),
        ("silver", "ghost", "silver"),  # a plan whose tier was removed grants nothing
    ],
)
def test_the_higher_of_earned_and_plan(earned: str | None, plan: str | None, expected: str) -> None:
    assert effective_tier(TIERS, earned, plan).code == expected
