"""Keyset pagination (§3.5): opaque cursors that carry the last row's sort key."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from shared.errors import DomainError

__all__ = ["Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: tuple[Any, ...] | list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key inside `cursor`, checked against `types`; 400 `invalid-cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw, type=list)
        if len(values) != len(types):
            raise ValueError("wrong arity")
        key = tuple(msgspec.convert(v, t) for v, t in zip(values, types, strict=True))
        if any(isinstance(v, datetime) and v.tzinfo is None for v in key):
            raise ValueError("a naive time: the cursors issued here carry UTC times")
        return key
    except (ValueError, binascii.Error, msgspec.DecodeError, msgspec.ValidationError):
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued") from None
