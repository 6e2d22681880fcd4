"""Distributor levels and statuses (§6.3), and loyalty's `plan.activated` events (§3.8).

A suspended distributor earns nothing on new orders (the orders code asks `is_eligible`); their frozen
commission still matures. Statuses are stored here only.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import msgspec

from services.referral.members import repository
from services.referral.members.schemas import (
    ID_PATTERN,
    Distributor,
    DistributorIn,
    DistributorLevel,
    DistributorLevelIn,
    LoyaltyEventResult,
)
from services.referral.members.service import ensure_member, member_not_found
from services.referral.program.service import MAX_DEPTH, is_eligible, load_program
from shared.errors import DomainError
from shared.events.outbox import Event, emit
from shared.events.signing import SignatureError, verify_signature
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = [
    "apply_loyalty_event",
    "authenticate_loyalty_event",
    "list_levels",
    "put_distributor",
    "put_level",
]

_MEMBER_ID = re.compile(ID_PATTERN)


def _level(row: asyncpg.Record) -> DistributorLevel:
    return DistributorLevel(
        code=row["code"],
        name=row["name"],
        rank=row["rank"],
        rates_bps=list(row["rates_bps"]),
        version=row["version"],
        updated_at=row["updated_at"],
    )


def _validate_rates(rates: list[int]) -> None:
    if not 1 <= len(rates) <= MAX_DEPTH:
        raise DomainError("invalid-rates", 422, f"one rate per level: 1 to {MAX_DEPTH} rates, not {len(rates)}")
    if any(not 0 <= rate <= 10_000 for rate in rates):
        raise DomainError("invalid-rates", 422, "every rate is 0 to 10000 bps")
    if sum(rates) > 10_000:
        raise DomainError("rates-exceed-total", 422, f"the rates sum to {sum(rates)} bps; at most 10000")


async def put_level(
    conn: asyncpg.Connection, tenant_id: str, code: str, data: DistributorLevelIn
) -> tuple[bool, DistributorLevel]:
    """Create or replace a level: (created, level). An unchanged level keeps its version."""
    _validate_rates(data.rates_bps)
    row = await repository.upsert_level(conn, tenant_id, code, data.name, data.rank, data.rates_bps)
    if row is None:
        row = await repository.fetch_level(conn, tenant_id, code)
        assert row is not None
    return row["created"], _level(row)


async def list_levels(
    conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None
) -> Page[DistributorLevel]:
    """Levels by rank, then code."""
    after = decode_cursor(cursor, (int, str)) if cursor else (-1, "")
    if not -1 <= after[0] < 2**31 or "\x00" in after[1]:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    rows = await repository.list_levels(conn, tenant_id, (after[0], after[1]), limit + 1)
    items = [_level(row) for row in rows[:limit]]
    next_cursor = encode_cursor([items[-1].rank, items[-1].code]) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def _updated(conn: asyncpg.Connection, tenant_id: str, row: asyncpg.Record, source: str) -> Distributor:
    config = (await load_program(conn, tenant_id)).config
    view = Distributor(
        member_id=row["member_id"],
        status=row["distributor_status"],
        level_code=row["distributor_level"],
        since=row["distributor_since"],
        eligible=is_eligible(config, row["distributor_status"]),
    )
    data = {"member_id": view.member_id, "status": view.status, "level_code": view.level_code, "source": source}
    await emit(conn, tenant_id, "distributor.updated", data)
    return view


async def put_distributor(conn: asyncpg.Connection, tenant_id: str, member_id: str, data: DistributorIn) -> Distributor:
    """Replace the member's distributor status and level (absent level: none)."""
    if data.level_code is not None and not await repository.level_exists(conn, tenant_id, data.level_code):
        raise DomainError("unknown-level", 422, f"no distributor level {data.level_code}")
    row = await repository.set_distributor(conn, tenant_id, member_id, data.status, data.level_code)
    if row is None:
        raise member_not_found(member_id)
    return await _updated(conn, tenant_id, row, "admin")


async def authenticate_loyalty_event(conn: asyncpg.Connection, headers: Any, raw_body: bytes) -> Event:
    """The event, if signed with its tenant's `loyalty_events_secret`; 401 `invalid-signature` otherwise.
    Unknown tenant, no secret, wrong or stale signature get the same answer: nothing leaks tenants."""
    refused = DomainError("invalid-signature", 401, "the event is not signed by the loyalty service of its tenant")
    try:
        event = msgspec.json.decode(raw_body, type=Event)
    except msgspec.DecodeError:
        raise DomainError("invalid-request", 400, "the body is not an event envelope") from None
    secret = (await load_program(conn, event.tenant_id)).config.loyalty_events_secret
    if secret is None:
        raise refused
    try:
        message_id = verify_signature(secret, headers, raw_body)
    except SignatureError:
        raise refused from None
    if message_id != event.event_id:
        raise refused
    return event


async def apply_loyalty_event(conn: asyncpg.Connection, event: Event) -> LoyaltyEventResult:
    """`plan.activated` with `data.grants_distribution: true` activates `data.member_id` as a distributor
    (registering the member at `occurred_at` if unknown, keeping any level); other events are ignored."""
    if event.type != "plan.activated" or event.data.get("grants_distribution") is not True:
        return LoyaltyEventResult(event_id=event.event_id, action="ignored")
    member_id = event.data.get("member_id")
    if not isinstance(member_id, str) or not _MEMBER_ID.fullmatch(member_id):
        raise DomainError("invalid-event", 422, "plan.activated needs data.member_id (1-64 of A-Z a-z 0-9 _ -)")
    tenant_id = event.tenant_id
    await ensure_member(conn, tenant_id, member_id, checked_time(event.occurred_at, "occurred_at"))
    row = await repository.activate_distributor(conn, tenant_id, member_id)
    assert row is not None
    await _updated(conn, tenant_id, row, "loyalty")
    return LoyaltyEventResult(event_id=event.event_id, action="distributor-activated", member_id=member_id)
