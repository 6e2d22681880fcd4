"""Earning from purchases (§5.4): an order's points, pending until the return window ends, refunds that
reverse them pro rata per item, and the order view.

Points are computed in `earning.py`; this module applies them. Lock order, the same as
`services/loyalty/points.py`: the order row, the member's lots, the ledger's account rows; the member
row (an immediate upgrade) last.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from services.loyalty import periods, points
from services.loyalty.earning_rules import repository as rules_repository
from services.loyalty.earning_rules.schemas import EarningRule
from services.loyalty.members.service import member_not_found
from services.loyalty.orders import repository
from services.loyalty.orders.earning import Earning, Line, compute_points
from services.loyalty.orders.schemas import (
    OrderIn,
    OrderItem,
    OrderView,
    Refund,
    RefundIn,
    RefundItem,
    RefundResult,
)
from services.loyalty.periods import window_start
from services.loyalty.program.schemas import ProgramConfig
from services.loyalty.program.service import ActiveProgram, load_program, program_of
from services.loyalty.tiers import standing
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import load_tiers
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import MAX_AMOUNT
from shared.timestamps import checked_time

__all__ = [
    "MAX_CLOCK_SKEW",
    "OrderContext",
    "PreparedOrder",
    "apply_order",
    "get_order",
    "lock_order",
    "order_context",
    "pending_until",
    "place_order",
    "prepare_order",
    "refund_order",
    "reversal_due",
]

MAX_CLOCK_SKEW = timedelta(minutes=5)  # §3.4: caller times may run this far ahead of ours


def pending_until(paid_at: datetime, pending_days: int, timezone: str) -> datetime:
    """`paid_at` plus the pending days in calendar days of the tenant's zone (same wall-clock time)."""
    local = paid_at.astimezone(ZoneInfo(timezone))
    return (local + timedelta(days=pending_days)).astimezone(UTC)


def reversal_due(item_points: int, item_amount: int, refunded_before: int, reversed_before: int, amount: int) -> int:
    """Points one refund of `amount` takes back from an item: after it the item has given back
    floor(points × refunded / paid) in total, so partial refunds never drift and a full refund gives back
    exactly all of it."""
    target = item_points * (refunded_before + amount) // item_amount
    return max(target - reversed_before, 0)


def _check_order(data: OrderIn, currency: str, now: datetime) -> datetime:
    """The payment time in UTC; 422 for an order that cannot be right."""
    if data.currency != currency:
        raise DomainError(
            "currency-mismatch", 422, f"the programme's currency is {currency}; the order is in {data.currency}"
        )
    seen: set[str] = set()
    for item in data.items:
        if item.item_id in seen:
            raise DomainError("duplicate-item", 422, f"item {item.item_id} appears twice; one line per item_id")
        seen.add(item.item_id)
        if any("\x00" in (text or "") for text in (item.item_id, item.sku, item.category)):
            raise DomainError("invalid-item", 422, "item_id, sku and category may not contain the NUL character")
    paid_at = checked_time(data.paid_at, "paid_at")
    if paid_at > now + MAX_CLOCK_SKEW:
        raise DomainError("paid-at-in-future", 422, "paid_at is more than 5 minutes ahead of the server's clock")
    if sum(item.amount for item in data.items) > MAX_AMOUNT:
        raise DomainError("amount-too-large", 422, f"an order's total may not exceed {MAX_AMOUNT}")
    return paid_at


class OrderContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an order is decided from, read in one statement (`repository.order_context`)."""

    currency: str
    timezone: str
    now: datetime  # the transaction's time: the order's created_at
    earned_tier: str | None
    program: ActiveProgram
    tiers: list[Tier]
    plan_tier: str | None  # the highest tier of a plan running at paid_at
    rules: list[EarningRule]  # in force at paid_at, by code


class PreparedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order decided (its response included) and not yet written."""

    view: OrderView
    earning: Earning
    tier: Tier
    config: ProgramConfig
    context: OrderContext


def _paid_at_or_none(data: OrderIn) -> datetime | None:
    try:
        return checked_time(data.paid_at, "paid_at")
    except DomainError:
        return None  # refused by _check_order, after the member check


async def order_context(conn: asyncpg.Connection, tenant_id: str, data: OrderIn) -> OrderContext:
    """Tenant, member (404 `member-not-found`), programme, tiers, plan tier and rules in one statement."""
    row = await repository.order_context(conn, tenant_id, data.member_id, _paid_at_or_none(data))
    assert row is not None  # the key's tenant exists
    if row["member_id"] is None:
        raise member_not_found(data.member_id)
    program = program_of(row["config"], row["program_version"], row["program_updated_at"])
    tiers = msgspec.convert(row["tiers"], list[Tier]) if row["tiers"] else await load_tiers(conn, tenant_id)
    return OrderContext(
        currency=row["currency"],
        timezone=row["timezone"],
        now=row["now"],
        earned_tier=row["earned_tier"],
        program=program,
        tiers=tiers,
        plan_tier=row["plan_tier"],
        rules=msgspec.convert(row["rules"], list[EarningRule]) if row["rules"] else [],
    )


async def _earning(
    conn: asyncpg.Connection,
    tenant_id: str,
    data: OrderIn,
    config: ProgramConfig,
    tier: Tier,
    paid_at: datetime,
    timezone: str,
    rules: list[EarningRule],
) -> Earning:
    daily = [rule for rule in rules if rule.cap_per_member_day is not None]
    day_left: dict[str, int] = {}
    if daily:
        # Two orders of the member on one day must not both see the same allowance.
        await repository.lock_member_day(conn, tenant_id, data.member_id)
        local_day = paid_at.astimezone(ZoneInfo(timezone)).date()
        granted = await rules_repository.granted_today(
            conn, tenant_id, data.member_id, [rule.code for rule in daily], local_day
        )
        day_left = {rule.code: (rule.cap_per_member_day or 0) - granted.get(rule.code, 0) for rule in daily}
    # By item_id: the same basket in any order splits its points the same way (ties go to the lower id).
    lines = [
        Line(item_id=i.item_id, sku=i.sku, category=i.category, amount=i.amount, quantity=i.quantity)
        for i in sorted(data.items, key=lambda i: i.item_id)
    ]
    earning = compute_points(
        lines,
        earn_points=config.earn_points,
        earn_per_amount=config.earn_per_amount,
        tier_bps=tier.multiplier_bps,
        rules=rules,
        day_left=day_left,
    )
    if earning.total > MAX_AMOUNT:
        raise DomainError("points-too-large", 422, f"the order would earn more than {MAX_AMOUNT} points")
    return earning


async def prepare_order(
    conn: asyncpg.Connection, tenant_id: str, data: OrderIn, context: OrderContext
) -> PreparedOrder:
    """Decide the order (422 refusals) and its response, writing nothing (a daily cap's advisory lock
    aside): the response is what `get_order` would read back once `apply_order` has written it."""
    paid_at = _check_order(data, context.currency, datetime.now(UTC))
    timezone = context.timezone
    config = context.program.config
    tier = standing.effective_tier(context.tiers, context.earned_tier, context.plan_tier)
    earning = await _earning(conn, tenant_id, data, config, tier, paid_at, timezone, context.rules)
    immediate = config.pending_days == 0
    view = OrderView(
        order_id=data.order_id,
        member_id=data.member_id,
        currency=data.currency,
        paid_at=paid_at,
        total_amount=sum(i.amount for i in data.items),
        refunded_amount=0,
        points=earning.total,
        reversed_points=0,
        state="released" if immediate else "pending",
        pending_until=pending_until(paid_at, config.pending_days, timezone),
        # No pending days: the earning entry is the release.
        released_at=paid_at if immediate else None,
        lot_expires_at=periods.expires_at(config.expiry, paid_at, timezone),
        rule_version=context.program.version,
        tier_code=tier.code,
        multiplier_bps=tier.multiplier_bps,
        items=[
            OrderItem(
                item_id=i.item_id,
                sku=i.sku,
                category=i.category,
                amount=i.amount,
                quantity=i.quantity,
                points=earning.item_points[i.item_id],
                refunded_amount=0,
                reversed_points=0,
                rule_codes=list(earning.item_rules[i.item_id]),
            )
            for i in sorted(data.items, key=lambda i: i.item_id)
        ],
        refunds=[],
        created_at=context.now,
    )
    return PreparedOrder(view=view, earning=earning, tier=tier, config=config, context=context)


async def apply_order(conn: asyncpg.Connection, tenant_id: str, prepared: PreparedOrder) -> None:
    """Write a prepared order: its points (pending until `paid_at` + pending days, or available at once,
    debt repaid first, when the programme has no pending days), the order, its qualifying points and
    event, and the immediate upgrade."""
    view, earning, tier, config, context = (
        prepared.view,
        prepared.earning,
        prepared.tier,
        prepared.config,
        prepared.context,
    )
    total, paid_at, timezone = earning.total, view.paid_at, context.timezone
    immediate = config.pending_days == 0
    key, source_ref = f"earn:{view.order_id}", f"order:{view.order_id}"
    entry_id: int | None = None
    debt_repaid = 0
    if total and immediate:
        credited = await points.credit_available(
            conn,
            tenant_id,
            view.member_id,
            total,
            source="issued",
            earned_at=paid_at,
            expires=view.lot_expires_at,
            key=key,
            kind="points.earn",
            reason="purchase",
            source_ref=source_ref,
        )
        entry_id, debt_repaid = credited.entry_id, credited.debt_repaid
    elif total:
        entry_id = await points.earn_pending(
            conn,
            tenant_id,
            view.member_id,
            total,
            key=key,
            kind="points.earn",
            effective_at=paid_at,
            reason="purchase",
            source_ref=source_ref,
        )
    event = {
        "member_id": view.member_id,
        "order_id": view.order_id,
        "points": total,
        "state": view.state,
        "pending_until": view.pending_until,
        "debt_repaid": debt_repaid,
        "lot_expires_at": view.lot_expires_at,
        "tier_code": tier.code,
        "multiplier_bps": tier.multiplier_bps,
        "rule_version": view.rule_version,
        "rules": earning.rule_points,
    }
    # The immediate upgrade's window ends at the later of now and the earning's time.
    as_of = max(datetime.now(UTC), paid_at)
    since = window_start(config.tier_window, as_of, timezone)
    tiers = context.tiers
    items = view.items
    standing_row = await repository.place(
        conn,
        tenant_id,
        {
            "order_id": view.order_id,
            "member_id": view.member_id,
            "currency": view.currency,
            "paid_at": paid_at,
            "total_amount": view.total_amount,
            "points": total,
            "rule_version": view.rule_version,
            "tier_code": tier.code,
            "multiplier_bps": tier.multiplier_bps,
            "pending_until": view.pending_until,
            "earn_entry_id": entry_id,
            "released_at": view.released_at,
            "release_entry_id": entry_id if immediate else None,
            "lot_expires_at": view.lot_expires_at,
        },
        (
            [i.item_id for i in items],
            [i.sku for i in items],
            [i.category for i in items],
            [i.amount for i in items],
            [i.quantity for i in items],
            [i.points for i in items],
            [",".join(i.rule_codes) for i in items],
        ),
        paid_at.astimezone(ZoneInfo(timezone)).date(),
        (list(earning.rule_points), list(earning.rule_points.values())),
        msgspec.to_builtins(event),
        (since, as_of),
        tiers[-1].code,
    )
    if not total or standing_row["qualifying"] is None:
        return  # nothing earned, or already at the top tier: no upgrade
    # The statement's snapshot did not see its own qualifying row.
    qualifying = standing_row["qualifying"] + (total if since is None or paid_at >= since else 0)
    by_code = {t.code: t for t in tiers}
    earned_code = standing_row["earned_tier"]
    current = by_code.get(earned_code, tiers[0]) if earned_code else tiers[0]
    target = standing.qualified_tier(tiers, qualifying)
    if target.rank > current.rank:
        await standing.change_tier(conn, tenant_id, view.member_id, tiers, current, target, "upgrade", paid_at)


async def place_order(conn: asyncpg.Connection, tenant_id: str, data: OrderIn) -> OrderView:
    """Record a paid order and issue its points, inside the caller's transaction (the HTTP handler
    runs the three steps around its idempotency claim)."""
    context = await order_context(conn, tenant_id, data)
    prepared = await prepare_order(conn, tenant_id, data, context)
    await apply_order(conn, tenant_id, prepared)
    return prepared.view


async def get_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> OrderView:
    row = await repository.fetch_order_view(conn, tenant_id, order_id)
    if row is None:
        raise DomainError("order-not-found", 404, f"order {order_id} does not exist")
    return msgspec.convert(dict(row), OrderView)


async def lock_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record:
    """The order row, locked for this transaction (404 `order-not-found`)."""
    order = await repository.lock_order(conn, tenant_id, order_id)
    if order is None:
        raise DomainError("order-not-found", 404, f"order {order_id} does not exist")
    return order


def _refund_lines(data: RefundIn, items: dict[str, asyncpg.Record]) -> list[RefundItem]:
    """Each refunded line with the points it reverses; 422 for lines that cannot be refunded."""
    lines: list[RefundItem] = []
    for line in data.items:
        if any(existing.item_id == line.item_id for existing in lines):
            raise DomainError("duplicate-item", 422, f"item {line.item_id} appears twice in the refund")
        item = items.get(line.item_id)
        if item is None:
            raise DomainError("unknown-item", 422, f"the order has no item {line.item_id}")
        left = item["amount"] - item["refunded_amount"]
        if line.amount > left:
            raise DomainError(
                "refund-exceeds-paid", 422, f"item {line.item_id}: refund {line.amount} exceeds the {left} still paid"
            )
        due = reversal_due(
            item["points"], item["amount"], item["refunded_amount"], item["reversed_points"], line.amount
        )
        lines.append(RefundItem(item_id=line.item_id, amount=line.amount, points_reversed=due))
    return lines


async def refund_order(conn: asyncpg.Connection, tenant_id: str, order: asyncpg.Record, data: RefundIn) -> RefundResult:
    """Reverse the points of the refunded amounts, pro rata per item: from this order's pending points
    while they are pending, else from available (FEFO), the shortfall per the negative-balance policy.
    Qualifying points drop by the same amount, at the order's payment time (the same window)."""
    order_id, member_id = order["order_id"], order["member_id"]
    items = {row["item_id"]: row for row in await repository.order_items(conn, tenant_id, order_id)}
    lines = _refund_lines(data, items)
    config = (await load_program(conn, tenant_id)).config
    due = sum(line.points_reversed for line in lines)
    still_pending = order["points"] - order["reversed_points"] if order["released_at"] is None else 0
    reversed_ = points.Reversed(entry_id=None, from_pending=0, from_available=0, to_debt=0, written_off=0)
    if due:
        reversed_ = await points.reverse_points(
            conn,
            tenant_id,
            member_id,
            due,
            from_pending=still_pending,
            policy=config.negative_balance,
            ref=f"refund:{data.refund_id}",
            key=f"refund:{data.refund_id}",
            kind="points.reverse",
            reason="refund",
            source_ref=f"order:{order_id}",
        )
    amount = sum(line.amount for line in lines)
    created_at = await repository.apply_refund(
        conn,
        tenant_id,
        order_id=order_id,
        refund_id=data.refund_id,
        amount=amount,
        points=due,
        debt_points=reversed_.to_debt,
        written_off=reversed_.written_off,
        items=[msgspec.to_builtins(line) for line in lines],
        entry_id=reversed_.entry_id,
    )
    await standing.add_qualifying(
        conn, tenant_id, member_id, -due, order["paid_at"], "refund", f"refund:{data.refund_id}", reversed_.entry_id
    )
    if due:
        await emit(
            conn,
            tenant_id,
            "points.reversed",
            {
                "member_id": member_id,
                "order_id": order_id,
                "refund_id": data.refund_id,
                "points": due,
                "from_pending": reversed_.from_pending,
                "from_available": reversed_.from_available,
                "to_debt": reversed_.to_debt,
                "written_off": reversed_.written_off,
            },
        )
    refund = Refund(
        refund_id=data.refund_id,
        amount=amount,
        points_reversed=due,
        debt_points=reversed_.to_debt,
        written_off=reversed_.written_off,
        items=lines,
        created_at=created_at,
    )
    return RefundResult(
        refund=refund,
        from_pending=reversed_.from_pending,
        from_available=reversed_.from_available,
        to_debt=reversed_.to_debt,
        written_off=reversed_.written_off,
        order=await get_order(conn, tenant_id, order_id),
    )
