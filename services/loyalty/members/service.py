"""Members (§5.9): upsert with their accounts, the member view (effective tier, balances, expiring
points, qualifying points) and the ledger history of their accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from services.loyalty import accounts
from services.loyalty.members import repository
from services.loyalty.members.schemas import (
    AccountName,
    Balances,
    EarnedTier,
    EffectiveTier,
    ExpiringPoints,
    Member,
    MemberIn,
    NextTier,
    PlanTier,
    Qualifying,
    Transaction,
)
from services.loyalty.periods import window_start
from services.loyalty.program.schemas import ProgramConfig
from services.loyalty.tiers import standing
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import check_json, ensure_tiers, load_tiers
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import history
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = ["EXPIRING_WINDOW", "get_member", "list_transactions", "member_not_found", "put_member"]

# §5.9: the member view shows the points expiring within the next 30 days.
EXPIRING_WINDOW = timedelta(days=30)


_ACCOUNTS = {"points": accounts.points, "pending": accounts.pending, "held": accounts.held, "debt": accounts.debt}


def member_not_found(member_id: str) -> DomainError:
    return DomainError("member-not-found", 404, f"member {member_id} does not exist")


async def put_member(conn: asyncpg.Connection, tenant_id: str, member_id: str, data: MemberIn) -> tuple[bool, Member]:
    """PUT /v1/members/{id}: (created, member). A new member gets its four point accounts, the tenant
    its default tiers, and a `member.registered` event; an existing one has its profile replaced."""
    joined_at = checked_time(data.joined_at, "joined_at")
    check_json("attributes", data.attributes)
    row = await repository.upsert_member(conn, tenant_id, member_id, data.attributes, joined_at)
    created = row is not None and row["created"]
    if created:
        await ensure_tiers(conn, tenant_id)
        await accounts.open_member_accounts(conn, tenant_id, member_id)
        await emit(
            conn,
            tenant_id,
            "member.registered",
            {"member_id": member_id, "joined_at": joined_at},
            occurred_at=joined_at,
        )
    return created, await get_member(conn, tenant_id, member_id)


async def get_member(conn: asyncpg.Connection, tenant_id: str, member_id: str, as_of: datetime | None = None) -> Member:
    """The member view in two statements (the view's rows, then the qualifying points, whose window
    depends on the programme read by the first); no transaction needed."""
    now = as_of or datetime.now(UTC)
    codes = [code(member_id) for code in _ACCOUNTS.values()]
    row = await repository.member_view(conn, tenant_id, member_id, now, codes, now + EXPIRING_WINDOW)
    if row is None:
        raise member_not_found(member_id)
    timezone = row["timezone"]
    config = ProgramConfig() if row["config"] is None else msgspec.convert(row["config"], ProgramConfig)
    tiers = msgspec.convert(row["tiers"], list[Tier]) if row["tiers"] else await load_tiers(conn, tenant_id)
    plan = (
        PlanTier(
            code=row["plan_tier_code"],
            plan_code=row["plan_code"],
            subscription_id=row["plan_subscription_id"],
            until=row["plan_ends_at"],
        )
        if row["plan_tier_code"] is not None
        else None
    )
    earned = standing.effective_tier(tiers, row["earned_tier"], None)
    effective = standing.effective_tier(tiers, row["earned_tier"], row["plan_tier_code"])
    plan_wins = effective.code != earned.code
    tier = EffectiveTier(
        code=effective.code,
        name=effective.name,
        rank=effective.rank,
        multiplier_bps=effective.multiplier_bps,
        source="plan" if plan_wins else "earned",
        until=plan.until if plan is not None and plan_wins else None,
        earned=EarnedTier(code=earned.code, since=row["tier_since"]),
        plan=plan,
    )

    amounts = dict(zip(_ACCOUNTS, [b or 0 for b in row["balances"]], strict=True))
    expiring = [
        ExpiringPoints(expires_at=at, last_day=day, points=points)
        for at, day, points in zip(
            row["expiring_at"] or [], row["expiring_last_day"] or [], row["expiring_points"] or [], strict=True
        )
    ]

    since = window_start(config.tier_window, now, timezone)
    qualifying = await repository.qualifying_points(conn, tenant_id, member_id, since, now)
    above = [t for t in tiers if t.rank > earned.rank]
    next_tier = (
        NextTier(
            code=above[0].code,
            name=above[0].name,
            threshold=above[0].threshold,
            points_needed=max(0, above[0].threshold - qualifying),
        )
        if above
        else None
    )
    return Member(
        member_id=row["member_id"],
        attributes=row["attributes"],
        joined_at=row["joined_at"],
        tier=tier,
        balances=Balances(
            available=amounts["points"], pending=amounts["pending"], held=amounts["held"], debt=amounts["debt"]
        ),
        expiring=expiring,
        qualifying=Qualifying(points=qualifying, window_start=since, next_tier=next_tier),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def list_transactions(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, account: AccountName, limit: int, cursor: str | None
) -> Page[Transaction]:
    """The member's account history newest first; the cursor carries the last line's (entry, leg)."""
    before = decode_cursor(cursor, (int, int)) if cursor else None
    if before is not None and not (0 <= before[0] < 2**63 and 0 <= before[1] < 2**15):
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    if await repository.fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    lines = await history(conn, tenant_id, _ACCOUNTS[account](member_id), limit=limit + 1, before=before)
    items = [
        Transaction(
            entry_id=line.entry_id,
            kind=line.kind,
            reason=line.reason,
            source_ref=line.source_ref,
            effective_at=line.effective_at,
            amount=line.amount,
            balance_after=line.balance_after,
        )
        for line in lines[:limit]
    ]
    next_cursor = encode_cursor([lines[limit - 1].entry_id, lines[limit - 1].leg]) if len(lines) > limit else None
    return Page(items=items, next_cursor=next_cursor)
