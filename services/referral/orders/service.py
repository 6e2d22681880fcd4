"""Commission rules (§6.4): the chain snapshot at payment, accrual, receipt, refunds with clawback.

Rates, per item and level, first match wins:
1. the item's category is in `excluded_categories`: nothing;
2. `category_rates_bps[category][level - 1]`: the category's override, for every member;
3. the member's distributor level `rates_bps[level - 1]` (when they have a level that defines that level);
4. the programme's `level_rates_bps[level - 1]`.
Mixed distributor levels could add up to more than 100 % of an item: deeper levels then get only what is
left, so an item never pays more commission than was paid for it. Commission = floor(amount × rate / 10000).

Lock order, the same in every flow here (and the ledger's): order row, commission rows, the members'
accounts in (tenant, account id) order, then the buyer's member row (team statistics): taken last, so
it is held only from the final write to the commit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from services.referral import accounts
from services.referral.orders import repository
from services.referral.orders.schemas import (
    ChainLink,
    Commission,
    OrderIn,
    OrderItem,
    OrderView,
    ReceivedIn,
    RefundIn,
    RefundResult,
    Reversal,
    SkippedReason,
)
from services.referral.program.schemas import ProgramConfig
from services.referral.program.service import ActiveProgram, is_eligible, load_program, program_from_row
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import MAX_AMOUNT, Leg, post_entry

__all__ = [
    "MAX_CLOCK_SKEW",
    "ChainSnapshot",
    "PreparedOrder",
    "apply_order",
    "get_order",
    "lock_order",
    "prepare_order",
    "record_receipt",
    "refund_order",
    "release_time",
    "snapshot_chain",
]

MAX_CLOCK_SKEW = timedelta(minutes=5)  # §3.4: caller times may run this far ahead of ours
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # older payment times are typos (and may not convert to UTC)
FULL_RATE = 10_000


class ChainSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The buyer's chain as the programme pays it now, and what the order is checked against."""

    program: ActiveProgram
    currency: str
    timezone: str
    links: list[ChainLink]


def release_time(start: datetime, freeze_days: int, timezone: str) -> datetime:
    """`start` plus the freeze in calendar days of the tenant's zone (same wall-clock time), in UTC."""
    local = start.astimezone(ZoneInfo(timezone))
    return (local + timedelta(days=freeze_days)).astimezone(UTC)


def _skipped_reason(config: ProgramConfig, status: str | None) -> SkippedReason | None:
    if is_eligible(config, status):
        return None
    return "suspended" if status == "suspended" else "not-approved"


async def snapshot_chain(conn: asyncpg.Connection, tenant_id: str, buyer_id: str) -> ChainSnapshot:
    """Read the programme and the buyer's chain (404 `member-not-found` for an unknown buyer)."""
    tenant = await repository.order_snapshot(conn, tenant_id, buyer_id)
    if tenant is None:
        raise DomainError("tenant-not-found", 404, f"tenant {tenant_id} does not exist")
    program = program_from_row(tenant)
    config = program.config
    rows = tenant["chain"] or []
    if not rows or rows[0]["depth"] != 0:
        raise DomainError("member-not-found", 404, f"member {buyer_id} is not registered")
    # With self-purchase commission the buyer is L1, so one ancestor level fewer is paid.
    self_level = 1 if config.self_purchase_commission else 0
    links: list[ChainLink] = []
    for row in rows:
        level = row["depth"] + self_level
        if level == 0 or level > config.depth:  # the buyer without self-purchase; beyond the programme's depth
            continue
        skipped = _skipped_reason(config, row["distributor_status"])
        rates = list(row["rates_bps"]) if row["rates_bps"] is not None else None
        rate = rates[level - 1] if rates is not None and len(rates) >= level else config.level_rates_bps[level - 1]
        links.append(
            ChainLink(
                level=level,
                member_id=row["member_id"],
                level_code=row["distributor_level"],
                rate_bps=0 if skipped else rate,
                skipped_reason=skipped,
            )
        )
    return ChainSnapshot(program=program, currency=tenant["currency"], timezone=tenant["timezone"], links=links)


def _item_rates(config: ProgramConfig, links: list[ChainLink], category: str | None) -> list[tuple[ChainLink, int]]:
    """(link, rate) for every level that earns on an item of this category."""
    if category is not None and category in config.excluded_categories:
        return []
    override = config.category_rates_bps.get(category) if category is not None else None
    paying: list[tuple[ChainLink, int]] = []
    left = FULL_RATE
    for link in links:
        if link.skipped_reason is not None:
            continue
        rate = override[link.level - 1] if override is not None and len(override) >= link.level else link.rate_bps
        rate = min(rate, left)
        left -= rate
        paying.append((link, rate))
    return paying


def _check_order(data: OrderIn, snapshot: ChainSnapshot, now: datetime) -> None:
    if data.currency != snapshot.currency:
        raise DomainError(
            "currency-mismatch", 422, f"the programme pays in {snapshot.currency}; the order is in {data.currency}"
        )
    seen: set[str] = set()
    for item in data.items:
        if item.item_id in seen:
            raise DomainError("duplicate-item", 422, f"item {item.item_id} appears twice; one line per item_id")
        seen.add(item.item_id)
    if data.paid_at > now + MAX_CLOCK_SKEW:
        raise DomainError("paid-at-in-future", 422, "paid_at is more than 5 minutes ahead of the server's clock")
    if data.paid_at < EARLIEST:
        raise DomainError("paid-at-out-of-range", 422, "paid_at is before 1970")
    if sum(item.amount for item in data.items) > MAX_AMOUNT:
        raise DomainError("amount-too-large", 422, f"an order's total may not exceed {MAX_AMOUNT}")


class PreparedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order decided from its snapshot, before anything is written: its view (the response), what
    each member accrues and the commission rows, column by column."""

    view: OrderView
    per_member: dict[str, int]
    columns: tuple[list[Any], ...]
    release_at: datetime | None
    freeze_days: int  # the programme's, kept on the order for a later receipt


def prepare_order(data: OrderIn, snapshot: ChainSnapshot, now: datetime) -> PreparedOrder:
    """Check the order and price its commission per item and level (422 refusals); writes nothing."""
    config = snapshot.program.config
    _check_order(data, snapshot, now)
    paid_at = data.paid_at.astimezone(UTC)
    release_at = release_time(paid_at, config.freeze_days, snapshot.timezone) if config.freeze_from == "paid" else None

    views: list[OrderItem] = []
    per_member: dict[str, int] = {}
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for item in sorted(data.items, key=lambda i: i.item_id):
        commissions = []
        for link, rate in _item_rates(config, snapshot.links, item.category):
            amount = item.amount * rate // FULL_RATE
            if amount == 0:
                continue
            per_member[link.member_id] = per_member.get(link.member_id, 0) + amount
            for column, value in zip(
                columns, (item.item_id, link.level, link.member_id, rate, item.amount, amount), strict=True
            ):
                column.append(value)
            commissions.append(
                Commission(
                    level=link.level,
                    member_id=link.member_id,
                    rate_bps=rate,
                    base_amount=item.amount,
                    amount=amount,
                    reversed_amount=0,
                    written_off=0,
                    state="frozen",
                    release_at=release_at,
                    released_at=None,
                )
            )
        views.append(
            OrderItem(
                item_id=item.item_id,
                category=item.category,
                amount=item.amount,
                quantity=item.quantity,
                refunded_amount=0,
                commissions=commissions,
            )
        )
    view = OrderView(
        order_id=data.order_id,
        buyer_id=data.buyer_id,
        currency=data.currency,
        paid_at=paid_at,
        received_at=None,
        total_amount=sum(item.amount for item in data.items),
        refunded_amount=0,
        commission_amount=sum(per_member.values()),
        rule_version=snapshot.program.version,
        chain=snapshot.links,
        items=views,
        refunds=[],
    )
    return PreparedOrder(
        view=view, per_member=per_member, columns=columns, release_at=release_at, freeze_days=config.freeze_days
    )


async def apply_order(conn: asyncpg.Connection, tenant_id: str, data: OrderIn, prepared: PreparedOrder) -> None:
    """Write a prepared order: its commission into the chain's frozen accounts as one ledger entry, then
    the order with its rows, the buyer's statistics and `commission.accrued` in one statement (the
    buyer's row after the accounts: the lock order)."""
    view, per_member = prepared.view, prepared.per_member
    entry_id = None
    event = None
    if view.commission_amount:
        legs = [Leg(accounts.EXPENSE, view.commission_amount)]
        legs += [Leg(accounts.frozen(member), -amount) for member, amount in per_member.items()]
        posted = await post_entry(
            conn,
            tenant_id,
            kind="commission.accrue",
            idempotency_key=f"accrue:{view.order_id}",
            legs=legs,
            effective_at=view.paid_at,
            source_ref=f"order:{view.order_id}",
        )
        entry_id = posted.entry_id
        # One event per order, listing every beneficiary (the chain is paid as one entry, too).
        event = msgspec.to_builtins(
            {
                "order_id": view.order_id,
                "buyer_id": view.buyer_id,
                "currency": view.currency,
                "paid_at": view.paid_at,
                "release_at": prepared.release_at,
                "rule_version": view.rule_version,
                "amount": view.commission_amount,
                "beneficiaries": [
                    {"member_id": link.member_id, "level": link.level, "amount": per_member[link.member_id]}
                    for link in view.chain
                    if link.member_id in per_member
                ],
            }
        )
    await repository.insert_order(
        conn,
        tenant_id,
        order_id=view.order_id,
        buyer_id=view.buyer_id,
        currency=view.currency,
        paid_at=view.paid_at,
        total_amount=view.total_amount,
        chain=[msgspec.to_builtins(link) for link in view.chain],
        rule_version=view.rule_version,
        accrue_entry_id=entry_id,
        items=(
            [i.item_id for i in data.items],
            [i.category for i in data.items],
            [i.amount for i in data.items],
            [i.quantity for i in data.items],
        ),
        commissions=prepared.columns,
        release_at=prepared.release_at,
        event=event,
        freeze_days=prepared.freeze_days,
    )


async def get_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> OrderView:
    row = await repository.fetch_order_view(conn, tenant_id, order_id)
    if row is None:
        raise DomainError("order-not-found", 404, f"order {order_id} does not exist")
    fields = dict(row)
    fields["commission_amount"] = sum(c["amount"] for item in fields["items"] for c in item["commissions"])
    return msgspec.convert(fields, OrderView)


async def lock_order(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record:
    """The order row, locked for this transaction (404 `order-not-found`)."""
    order = await repository.lock_order(conn, tenant_id, order_id)
    if order is None:
        raise DomainError("order-not-found", 404, f"order {order_id} does not exist")
    return order


async def record_receipt(conn: asyncpg.Connection, tenant_id: str, order_id: str, data: ReceivedIn) -> OrderView:
    """Record receipt once; commission waiting for it (freeze_from = received) is released after the
    freeze days the order was paid under."""
    order = await lock_order(conn, tenant_id, order_id)
    # Aware datetimes compare across offsets; converting comes last (0001-01-01T00:00+14:00 has no UTC).
    if order["received_at"] is not None:
        if order["received_at"] == data.received_at:
            return await get_order(conn, tenant_id, order_id)
        raise DomainError(
            "already-received", 409, f"order {order_id} was received at {order['received_at'].isoformat()}"
        )
    if data.received_at > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise DomainError(
            "received-at-in-future", 422, "received_at is more than 5 minutes ahead of the server's clock"
        )
    if data.received_at < order["paid_at"]:
        raise DomainError("received-before-paid", 422, "received_at is earlier than the order's paid_at")
    received_at = data.received_at.astimezone(UTC)
    # The freeze days kept with the order's snapshot; orders placed before migration 0006 have none.
    freeze_days = order["freeze_days"]
    if freeze_days is None:
        freeze_days = (await load_program(conn, tenant_id)).config.freeze_days
    tenant = await repository.tenant_money_settings(conn, tenant_id)
    assert tenant is not None  # the order exists, so its tenant does
    release_at = release_time(received_at, freeze_days, tenant["timezone"])
    scheduled = await repository.record_receipt(conn, tenant_id, order_id, received_at, release_at)
    await emit(
        conn,
        tenant_id,
        "order.received",
        {"order_id": order_id, "received_at": received_at, "release_at": release_at if scheduled else None},
        occurred_at=received_at,
    )
    return await get_order(conn, tenant_id, order_id)


def _check_refund(data: RefundIn, items: dict[str, asyncpg.Record]) -> None:
    seen: set[str] = set()
    for line in data.items:
        if line.item_id in seen:
            raise DomainError("duplicate-item", 422, f"item {line.item_id} appears twice in the refund")
        seen.add(line.item_id)
        item = items.get(line.item_id)
        if item is None:
            raise DomainError("unknown-item", 422, f"the order has no item {line.item_id}")
        left = item["amount"] - item["refunded_amount"]
        if line.amount > left:
            raise DomainError(
                "refund-exceeds-paid", 422, f"item {line.item_id}: refund {line.amount} exceeds the {left} still paid"
            )


async def refund_order(conn: asyncpg.Connection, tenant_id: str, order: asyncpg.Record, data: RefundIn) -> RefundResult:
    """Reverse the commission of the refunded amounts, pro rata per item and level, in one entry.

    Cumulative rounding: after a refund an item's commission row has reversed exactly
    floor(amount × refunded / paid) in total, so partial refunds never drift and a full refund
    reverses everything. Frozen rows give back from frozen; released rows from available as far as
    the balance goes, the rest into debt (`clawback = debt`) or written off (`cap`).
    """
    order_id = order["order_id"]
    items = {row["item_id"]: row for row in await repository.order_items(conn, tenant_id, order_id)}
    _check_refund(data, items)
    commissions = await repository.lock_commissions(conn, tenant_id, order_id)
    config = (await load_program(conn, tenant_id)).config
    refunded = {line.item_id: items[line.item_id]["refunded_amount"] + line.amount for line in data.items}
    refund_total = sum(line.amount for line in data.items)

    due: list[tuple[asyncpg.Record, int]] = []
    for row in commissions:
        if row["item_id"] not in refunded:
            continue
        item = items[row["item_id"]]
        target = row["amount"] * refunded[row["item_id"]] // item["amount"]
        if target > row["reversed_amount"]:
            due.append((row, target - row["reversed_amount"]))

    available: dict[str, int] = {}
    if any(row["state"] == "released" for row, _ in due):
        members = sorted({row["beneficiary_id"] for row, _ in due})
        codes = [code for m in members for code in (accounts.frozen(m), accounts.available(m), accounts.debt(m))]
        owners = {accounts.available(m): m for m in members}
        for account in await repository.lock_member_accounts(conn, [tenant_id] * len(codes), codes):
            if account["code"] in owners:
                available[owners[account["code"]]] = account["credits_posted"] - account["debits_posted"]

    reversals: list[Reversal] = []
    debits: dict[str, int] = defaultdict(int)
    for row, amount in due:
        member = row["beneficiary_id"]
        from_frozen = from_available = to_debt = written_off = 0
        if row["state"] == "frozen":
            from_frozen = amount
        else:
            from_available = min(available.get(member, 0), amount)
            available[member] = available.get(member, 0) - from_available
            if config.clawback == "debt":
                to_debt = amount - from_available
            else:
                written_off = amount - from_available
        for code, part in (
            (accounts.frozen(member), from_frozen),
            (accounts.available(member), from_available),
            (accounts.debt(member), to_debt),
        ):
            if part:
                debits[code] += part
        reversals.append(
            Reversal(
                item_id=row["item_id"],
                level=row["level"],
                member_id=member,
                amount=amount,
                from_frozen=from_frozen,
                from_available=from_available,
                to_debt=to_debt,
                written_off=written_off,
            )
        )

    taken = sum(debits.values())
    entry_id = None
    if taken:
        legs = [Leg(code, amount) for code, amount in debits.items()] + [Leg(accounts.EXPENSE, -taken)]
        posted = await post_entry(
            conn,
            tenant_id,
            kind="commission.reverse",
            idempotency_key=f"refund:{data.refund_id}",
            legs=legs,
            source_ref=f"order:{order_id}",
            metadata={"refund_id": data.refund_id},
        )
        entry_id = posted.entry_id
    created_at = await repository.apply_refund(
        conn,
        tenant_id,
        order_id=order_id,
        buyer_id=order["buyer_id"],
        refund_id=data.refund_id,
        amount=refund_total,
        items=[msgspec.to_builtins(line) for line in data.items],
        entry_id=entry_id,
        item_refunds=([line.item_id for line in data.items], [line.amount for line in data.items]),
        reversals=(
            [r.item_id for r in reversals],
            [r.level for r in reversals],
            [r.amount for r in reversals],
            [r.written_off for r in reversals],
        ),
    )
    reversed_total = sum(r.amount for r in reversals)
    if reversals:
        await emit(
            conn,
            tenant_id,
            "commission.reversed",
            {
                "order_id": order_id,
                "refund_id": data.refund_id,
                "currency": order["currency"],
                "amount": reversed_total,
                "reversals": reversals,
            },
        )
    return RefundResult(
        refund_id=data.refund_id,
        order_id=order_id,
        amount=refund_total,
        items=data.items,
        commission_reversed=reversed_total,
        reversals=reversals,
        created_at=created_at,
    )
