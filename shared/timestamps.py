"""Caller-supplied timestamps (§3.4), checked the same way by both services."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.errors import DomainError

__all__ = ["EARLIEST", "LATEST", "checked_time"]

# Caller times outside this range are refused (422): far dates are mistakes, and some cannot be read back.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def checked_time(value: datetime, field: str) -> datetime:
    """A caller's timestamp in UTC (without an offset it is UTC already); 1970 ≤ t < 3000."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not EARLIEST <= value < LATEST:
        raise DomainError("invalid-timestamp", 422, f"{field} must lie between 1970 and 3000")
    return value.astimezone(UTC)
