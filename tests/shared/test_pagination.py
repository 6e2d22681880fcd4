"""Opaque keyset cursors: what goes in comes out; anything else is a 400 `invalid-cursor`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import DomainError
from shared.pagination import decode_cursor, encode_cursor


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=64))
def test_cursor_round_trips(entry_id: int, code: str) -> None:
    assert decode_cursor(encode_cursor((entry_id, code)), (int, str)) == (entry_id, code)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", encode_cursor((1,)), encode_cursor(("x", 2))])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(DomainError) as caught:
        decode_cursor(cursor, (int, str))
    assert (caught.value.type, caught.value.status) == ("invalid-cursor", 400)


def test_cursor_times_must_carry_their_zone() -> None:
    """The cursors issued here carry UTC times; one without a zone was not issued here (every list by time)."""
    stamp = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor((stamp, "r-1")), (datetime, str)) == (stamp, "r-1")
    with pytest.raises(DomainError) as caught:
        decode_cursor(encode_cursor(("2026-11-23T08:00:00", "r-1")), (datetime, str))
    assert (caught.value.type, caught.value.status) == ("invalid-cursor", 400)
