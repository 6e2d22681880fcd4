"""Earning rules (§5.4): bonus points by category or sku, a multiplier of the base or fixed points per
unit, capped per order and per member per tenant-local day, valid in a window.

Choices where DESIGN is silent: a rule's condition is a union (category listed or sku listed; both
empty = every item); several rules may match one item and their bonuses add up; rules are read as they
are when the order is recorded (their window is checked against `paid_at`).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from services.loyalty.earning_rules import repository
from services.loyalty.earning_rules.schemas import Condition, EarningRule, EarningRuleIn
from shared.errors import DomainError
from shared.ledger import MAX_AMOUNT
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = ["list_rules", "put_rule", "rule_of"]

MAX_MULTIPLIER_BPS = 1_000_000  # 100×, as the table allows
MAX_POINTS_PER_UNIT = 1_000_000_000


def rule_of(row: asyncpg.Record | dict[str, Any]) -> EarningRule:
    return EarningRule(
        code=row["code"],
        name=row["name"],
        kind=row["kind"],
        condition=msgspec.convert(row["condition"], Condition),
        multiplier_bps=row["multiplier_bps"],
        points_per_unit=row["points_per_unit"],
        cap_per_order=row["cap_per_order"],
        cap_per_member_day=row["cap_per_member_day"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        active=row["active"],
        version=row["version"],
        updated_at=row["updated_at"],
    )


def _invalid(detail: str) -> DomainError:
    return DomainError("invalid-rule", 422, detail)


def _check_range(field: str, value: int | None, high: int) -> None:
    if value is not None and not 0 <= value <= high:
        raise _invalid(f"{field} must lie between 0 and {high}")


def _check_condition(condition: Condition) -> None:
    for field, values in (("categories", condition.categories), ("skus", condition.skus)):
        for value in values:
            if not 1 <= len(value) <= 64 or "\x00" in value:
                raise _invalid(f"condition.{field}: each entry has 1 to 64 characters and no NUL")


def _checked(data: EarningRuleIn) -> dict[str, Any]:
    """The rule's columns; 422 `invalid-rule` for fields that contradict its kind or each other."""
    if data.kind == "multiplier" and (data.multiplier_bps is None or data.points_per_unit is not None):
        raise _invalid("a multiplier rule takes multiplier_bps and no points_per_unit")
    if data.kind == "fixed_per_unit" and (data.points_per_unit is None or data.multiplier_bps is not None):
        raise _invalid("a fixed_per_unit rule takes points_per_unit and no multiplier_bps")
    _check_range("multiplier_bps", data.multiplier_bps, MAX_MULTIPLIER_BPS)
    _check_range("points_per_unit", data.points_per_unit, MAX_POINTS_PER_UNIT)
    _check_range("cap_per_order", data.cap_per_order, MAX_AMOUNT)
    _check_range("cap_per_member_day", data.cap_per_member_day, MAX_AMOUNT)
    if "\x00" in data.name:
        raise _invalid("name may not contain the NUL character")
    _check_condition(data.condition)
    valid_from = checked_time(data.valid_from, "valid_from") if data.valid_from is not None else None
    valid_until = checked_time(data.valid_until, "valid_until") if data.valid_until is not None else None
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise DomainError("invalid-window", 422, "valid_until must be later than valid_from")
    return {
        "name": data.name,
        "kind": data.kind,
        "condition": msgspec.to_builtins(data.condition),
        "multiplier_bps": data.multiplier_bps,
        "points_per_unit": data.points_per_unit,
        "cap_per_order": data.cap_per_order,
        "cap_per_member_day": data.cap_per_member_day,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "active": data.active,
    }


async def put_rule(
    conn: asyncpg.Connection, tenant_id: str, code: str, data: EarningRuleIn
) -> tuple[bool, EarningRule]:
    """Create or replace a rule: (created, rule). An unchanged rule keeps its version."""
    row = await repository.upsert_rule(conn, tenant_id, code, _checked(data))
    if row is None:
        current = await repository.fetch_rule(conn, tenant_id, code)
        assert current is not None  # the upsert found it unchanged
        return False, rule_of(current)
    return row["created"], rule_of(row)


async def list_rules(conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None) -> Page[EarningRule]:
    """Rules by code."""
    (after,) = decode_cursor(cursor, (str,)) if cursor else ("",)
    if len(after) > 64 or "\x00" in after:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    rows = await repository.list_rules(conn, tenant_id, after, limit + 1)
    items = [rule_of(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > limit else None)
