"""Opaque keyset cursors: what goes in comes out; anything else is a 400 `invalid-cursor`."""

from __future__ import annotations

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
