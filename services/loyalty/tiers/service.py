"""Tier rules (§5.2): a new tenant has normal (0), premium (1000) and elite (5000); ranks are unique,
thresholds rise strictly with rank, and the lowest rank is the entry tier with threshold 0."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from services.loyalty.tiers import repository
from services.loyalty.tiers.schemas import Tier, TierHistoryEntry, TierIn
from shared.errors import DomainError
from shared.pagination import Page, decode_cursor, encode_cursor

__all__ = ["check_json", "ensure_tiers", "list_tier_history", "list_tiers", "load_tiers", "put_tier", "tier_of"]

_encode = msgspec.json.Encoder().encode


def tier_of(row: asyncpg.Record | dict[str, Any]) -> Tier:
    return Tier(
        code=row["code"],
        name=row["name"],
        rank=row["rank"],
        threshold=row["threshold"],
        multiplier_bps=row["multiplier_bps"],
        benefits=row["benefits"],
        version=row["version"],
        updated_at=row["updated_at"],
    )


def check_json(field: str, value: Any) -> None:
    """jsonb refuses the NUL character (\\u0000) and our rows stay small: 422 instead of a 500."""
    encoded = _encode(value)
    if b"\\u0000" in encoded:
        raise DomainError("invalid-json", 422, f"{field} may not contain the NUL character")
    if len(encoded) > 16_384:
        raise DomainError("invalid-json", 422, f"{field} is larger than 16 KiB")


async def ensure_tiers(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Give the tenant the default tiers if it has not got them (idempotent, one statement)."""
    await repository.seed_default_tiers(conn, tenant_id)


async def load_tiers(conn: asyncpg.Connection, tenant_id: str) -> list[Tier]:
    """All the tenant's tiers by rank (the defaults created on first use)."""
    rows = await repository.list_tiers(conn, tenant_id, -1, 10_000)
    if not rows:
        await ensure_tiers(conn, tenant_id)
        rows = await repository.list_tiers(conn, tenant_id, -1, 10_000)
    return [tier_of(row) for row in rows]


def _validate(tiers: list[tuple[int, int, str]]) -> None:
    """(rank, threshold, code) of the whole set after the change."""
    tiers.sort()
    for (rank, threshold, code), (next_rank, next_threshold, next_code) in zip(tiers, tiers[1:], strict=False):
        if rank == next_rank:
            raise DomainError("rank-taken", 422, f"tiers {code} and {next_code} would share rank {rank}")
        if threshold >= next_threshold:
            raise DomainError(
                "invalid-threshold",
                422,
                f"thresholds rise with rank: {next_code} (rank {next_rank}) needs more than {code}'s {threshold}",
            )
    if tiers and tiers[0][1] != 0:
        raise DomainError("invalid-threshold", 422, f"the lowest tier ({tiers[0][2]}) is the entry tier: threshold 0")


async def put_tier(conn: asyncpg.Connection, tenant_id: str, code: str, data: TierIn) -> tuple[bool, Tier]:
    """Create or replace a tier: (created, tier). An unchanged tier keeps its version."""
    check_json("benefits", data.benefits)
    await ensure_tiers(conn, tenant_id)
    current = await repository.lock_tiers(conn, tenant_id)
    after = [(r["rank"], r["threshold"], r["code"]) for r in current if r["code"] != code]
    _validate([*after, (data.rank, data.threshold, code)])
    row = await repository.upsert_tier(
        conn, tenant_id, code, data.name, data.rank, data.threshold, data.multiplier_bps, data.benefits
    )
    if row is None:
        return False, tier_of(next(r for r in current if r["code"] == code))
    return row["created"], tier_of(row)


async def list_tiers(conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None) -> Page[Tier]:
    """Tiers by rank."""
    (after,) = decode_cursor(cursor, (int,)) if cursor else (-1,)
    if not -1 <= after < 2**31:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    await ensure_tiers(conn, tenant_id)
    rows = await repository.list_tiers(conn, tenant_id, after, limit + 1)
    items = [tier_of(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].rank]) if len(rows) > limit else None)


async def list_tier_history(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, limit: int, cursor: str | None
) -> Page[TierHistoryEntry]:
    """A member's tier changes, newest first (404 `member-not-found` for an unknown member)."""
    (before,) = decode_cursor(cursor, (int,)) if cursor else (None,)
    if before is not None and not 0 < before < 2**63:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    if not await repository.member_exists(conn, tenant_id, member_id):
        raise DomainError("member-not-found", 404, f"member {member_id} does not exist")
    rows = await repository.list_tier_history(conn, tenant_id, member_id, before, limit + 1)
    items = [TierHistoryEntry(**dict(row)) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].history_id]) if len(rows) > limit else None)
