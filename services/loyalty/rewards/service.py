"""Reward and redemption rules (§5.7).

A redemption spends cost_points × quantity from the member's available points, first-expiring lots
first, in one entry `points + / redeemed −`, and takes the quantity from the reward's stock. Every
refusal (unknown member or reward, inactive or out of its window, tier too low, limit reached, out of
stock, insufficient points) writes nothing. A cancellation gives back exactly the lots it took (with
their original expiry), the points in one entry `redeemed + / points −`, and the stock; once.

Lock order (the same as every other flow, so none deadlocks with another): the member × reward
advisory lock (or the redemption row on cancel), then the member's lots, then the ledger's account
rows, then the reward row last (it is the hot row under a promotion: held for the shortest time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.loyalty import accounts
from services.loyalty.lots import allocate_fefo, restore_allocations
from services.loyalty.members import repository as members
from services.loyalty.members.service import member_not_found
from services.loyalty.rewards import repository
from services.loyalty.rewards.schemas import Redemption, RedemptionIn, Reward, RewardIn
from services.loyalty.tiers import standing
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import check_json, ensure_tiers, load_tiers
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import MAX_AMOUNT, Leg, post_entry
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = [
    "cancel_redemption",
    "get_redemption",
    "get_reward",
    "list_redemptions",
    "list_rewards",
    "put_reward",
    "redeem",
]


def _reward(row: asyncpg.Record) -> Reward:
    return Reward(**{field: row[field] for field in Reward.__struct_fields__})


def _redemption(row: asyncpg.Record) -> Redemption:
    return Redemption(**{field: row[field] for field in Redemption.__struct_fields__})


def reward_not_found(code: str) -> DomainError:
    return DomainError("reward-not-found", 404, f"reward {code} does not exist")


def redemption_not_found(redemption_id: str) -> DomainError:
    return DomainError("redemption-not-found", 404, f"redemption {redemption_id} does not exist")


# --- rewards ---------------------------------------------------------------------------------------


async def put_reward(conn: asyncpg.Connection, tenant_id: str, code: str, data: RewardIn) -> tuple[bool, Reward]:
    """Create or replace a reward: (created, reward). An unchanged reward keeps its version."""
    check_json("payload", data.payload)
    if data.stock is not None and data.stock < 0:
        raise DomainError("invalid-stock", 422, "stock is the number of units left: 0 or more (null: unlimited)")
    valid_from = checked_time(data.valid_from, "valid_from") if data.valid_from is not None else None
    valid_until = checked_time(data.valid_until, "valid_until") if data.valid_until is not None else None
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise DomainError("invalid-window", 422, "valid_until must be later than valid_from")
    if data.min_tier is not None:
        await ensure_tiers(conn, tenant_id)
        if data.min_tier not in {tier.code for tier in await load_tiers(conn, tenant_id)}:
            raise DomainError("tier-not-found", 422, f"tier {data.min_tier} does not exist")
    values: dict[str, Any] = {
        "name": data.name,
        "cost_points": data.cost_points,
        "kind": data.kind,
        "stock": data.stock,
        "per_member_limit": data.per_member_limit,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "min_tier": data.min_tier,
        "payload": data.payload,
        "active": data.active,
    }
    row = await repository.upsert_reward(conn, tenant_id, code, values)
    if row is None:
        return False, await get_reward(conn, tenant_id, code)
    return row["created"], _reward(row)


async def get_reward(conn: asyncpg.Connection, tenant_id: str, code: str) -> Reward:
    row = await repository.fetch_reward(conn, tenant_id, code)
    if row is None:
        raise reward_not_found(code)
    return _reward(row)


async def list_rewards(conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None) -> Page[Reward]:
    """Rewards by code."""
    (after,) = decode_cursor(cursor, (str,)) if cursor else ("",)
    rows = await repository.list_rewards(conn, tenant_id, after, limit + 1)
    items = [_reward(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > limit else None)


# --- redemptions -----------------------------------------------------------------------------------


async def _effective_rank(
    conn: asyncpg.Connection, tenant_id: str, member: asyncpg.Record, tiers: list[Tier], now: datetime
) -> int:
    """The rank of the member's effective tier: the higher of the earned tier and an active plan's
    (as the member view computes it; earned_tier NULL is the entry tier)."""
    plan = await members.active_plan_tier(conn, tenant_id, member["member_id"], now)
    plan_code = plan["tier_code"] if plan is not None else None
    return standing.effective_tier(tiers, member["earned_tier"], plan_code).rank


async def _check_reward(
    conn: asyncpg.Connection, tenant_id: str, member: asyncpg.Record, reward: asyncpg.Record, now: datetime
) -> None:
    """The refusals that need no lock: inactive, outside its window, tier too low, stock visibly gone."""
    code = reward["code"]
    if not reward["active"]:
        raise DomainError("reward-inactive", 409, f"reward {code} is not active")
    if reward["valid_from"] is not None and now < reward["valid_from"]:
        raise DomainError("reward-not-valid", 409, f"reward {code} can be redeemed from {reward['valid_from']}")
    if reward["valid_until"] is not None and now >= reward["valid_until"]:
        raise DomainError("reward-not-valid", 409, f"reward {code} could be redeemed until {reward['valid_until']}")
    if reward["min_tier"] is not None:
        tiers = await load_tiers(conn, tenant_id)
        needed = next(tier for tier in tiers if tier.code == reward["min_tier"])
        if await _effective_rank(conn, tenant_id, member, tiers, now) < needed.rank:
            raise DomainError("tier-too-low", 409, f"reward {code} needs tier {needed.code} or higher")


async def redeem(conn: asyncpg.Connection, tenant_id: str, member_id: str, data: RedemptionIn) -> Redemption:
    """Spend the reward's cost from the member's points (FEFO lots) and take the quantity from stock."""
    member = await members.fetch_member(conn, tenant_id, member_id)
    if member is None:
        raise member_not_found(member_id)
    reward = await repository.fetch_reward(conn, tenant_id, data.reward_code)
    if reward is None:
        raise reward_not_found(data.reward_code)
    now = datetime.now(UTC)
    await _check_reward(conn, tenant_id, member, reward, now)
    code, quantity = reward["code"], data.quantity
    if reward["stock"] is not None and reward["stock"] < quantity:  # early, before any lock; rechecked below
        raise DomainError("out-of-stock", 409, f"reward {code} has {reward['stock']} left, {quantity} asked")

    await repository.lock_member_reward(conn, tenant_id, member_id, code)
    limit = reward["per_member_limit"]
    if limit is not None:
        taken = await repository.redeemed_quantity(conn, tenant_id, member_id, code)
        if taken + quantity > limit:
            raise DomainError(
                "limit-reached", 409, f"member {member_id} has redeemed {taken} of reward {code}; the limit is {limit}"
            )

    points = reward["cost_points"] * quantity
    if points > MAX_AMOUNT:  # no balance is that large; keeps the amount inside the ledger's range
        raise DomainError("insufficient-points", 409, f"{points} points needed: more than any balance")
    await allocate_fefo(conn, tenant_id, member_id, points, "redemption", data.redemption_id)
    posted = await post_entry(
        conn,
        tenant_id,
        kind="points.redeem",
        idempotency_key=f"redeem:{data.redemption_id}",
        legs=[Leg(accounts.points(member_id), points), Leg(accounts.REDEEMED, -points)],
        effective_at=now,
        reason=f"reward {code} × {quantity}",
        source_ref=f"redemption:{data.redemption_id}",
    )
    # Unlimited stock (NULL) stays NULL: no UPDATE, so redemptions of the reward do not queue on its
    # row. The stock read above is that of this request's view of the reward: a PUT that limits the
    # stock while this redemption runs counts from after it.
    if reward["stock"] is not None and not await repository.take_stock(conn, tenant_id, code, quantity):
        raise DomainError("out-of-stock", 409, f"reward {code} has fewer than {quantity} left")
    row = await repository.insert_redemption(
        conn,
        tenant_id,
        redemption_id=data.redemption_id,
        member_id=member_id,
        reward_code=code,
        quantity=quantity,
        points=points,
        entry_id=posted.entry_id,
    )
    view = _redemption(row)
    await emit(
        conn,
        tenant_id,
        "points.redeemed",
        {
            "redemption_id": view.redemption_id,
            "member_id": member_id,
            "reward_code": code,
            "reward_kind": reward["kind"],
            "payload": reward["payload"],
            "quantity": quantity,
            "points": points,
        },
        occurred_at=now,
    )
    return view


async def cancel_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str) -> tuple[Redemption, bool]:
    """Give back the lots, the points and the stock, once: (view, changed). A second cancel is a no-op."""
    row = await repository.lock_redemption(conn, tenant_id, redemption_id)
    if row is None:
        raise redemption_not_found(redemption_id)
    if row["status"] == "cancelled":
        return _redemption(row), False
    member_id, points = row["member_id"], row["points"]
    await restore_allocations(conn, tenant_id, "redemption", redemption_id)
    posted = await post_entry(
        conn,
        tenant_id,
        kind="points.redeem_cancel",
        idempotency_key=f"redeem-cancel:{redemption_id}",
        legs=[Leg(accounts.REDEEMED, points), Leg(accounts.points(member_id), -points)],
        reason=f"redemption {redemption_id} cancelled",
        source_ref=f"redemption:{redemption_id}",
    )
    await repository.return_stock(conn, tenant_id, row["reward_code"], row["quantity"])
    view = _redemption(await repository.cancel_redemption(conn, tenant_id, redemption_id, posted.entry_id))
    await emit(
        conn,
        tenant_id,
        "points.redemption_cancelled",
        {
            "redemption_id": redemption_id,
            "member_id": member_id,
            "reward_code": view.reward_code,
            "quantity": view.quantity,
            "points": points,
        },
        occurred_at=view.cancelled_at,
    )
    return view, True


async def get_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str) -> Redemption:
    row = await repository.fetch_redemption(conn, tenant_id, redemption_id)
    if row is None:
        raise redemption_not_found(redemption_id)
    return _redemption(row)


async def list_redemptions(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, limit: int, cursor: str | None
) -> Page[Redemption]:
    """A member's redemptions, newest first."""
    before = decode_cursor(cursor, (datetime, str)) if cursor else None
    if await members.fetch_member(conn, tenant_id, member_id) is None:
        raise member_not_found(member_id)
    rows = await repository.list_member_redemptions(conn, tenant_id, member_id, before, limit + 1)
    items = [_redemption(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor([last.created_at, last.redemption_id]) if last else None)
