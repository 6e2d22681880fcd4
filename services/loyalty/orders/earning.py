"""The points of an order (§5.4), as pure arithmetic on exact fractions (no floats, no I/O); an order
with no rule in force, the common case, in integers over one common denominator (the same results).

- Base: floor(Σ paid amount × earn_points / earn_per_amount × tier multiplier / 10000) over the order.
- A `multiplier` rule adds, on its matching items, base × (multiplier_bps − 10000) / 10000 (below 1×
  it takes points away from those items); a `fixed_per_unit` rule adds points_per_unit × quantity.
- A rule that adds points adds a whole number of them: floor(its bonus), then capped by its
  `cap_per_order` and by what `cap_per_member_day` still allows today. Several rules add up.
- The order's total is then split over its items by largest remainder in proportion to each item's
  exact share, so the items sum to the total and an item refund reverses exactly its own share.
"""

from __future__ import annotations

from fractions import Fraction

import msgspec

from services.loyalty.earning_rules.schemas import EarningRule

__all__ = ["Earning", "Line", "allocate", "compute_points", "rule_matches"]

FULL_BPS = 10_000


class Line(msgspec.Struct, frozen=True, kw_only=True):
    item_id: str
    sku: str | None
    category: str | None
    amount: int
    quantity: int


class Earning(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    base: int  # floor of the base alone, before rules (for the record)
    item_points: dict[str, int]
    item_rules: dict[str, list[str]]  # the rules that matched each item
    rule_points: dict[str, int]  # points each rule added to the order (> 0 only)


def rule_matches(rule: EarningRule, line: Line) -> bool:
    categories, skus = rule.condition.categories, rule.condition.skus
    if not categories and not skus:
        return True
    return (line.category is not None and line.category in categories) or (line.sku is not None and line.sku in skus)


def allocate(total: int, shares: list[Fraction]) -> list[int]:
    """Split `total` (≤ Σ shares) into integers: each share's floor, then one more point to the shares
    with the largest remainders (earlier first on ties), so each gets its floor or its ceiling."""
    points = [share.numerator // share.denominator for share in shares]
    left = total - sum(points)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - points[i]), i))
    for i in order[:left]:
        points[i] += 1
    return points


def _rule_bonus(rule: EarningRule, lines: list[Line], base: list[Fraction]) -> list[Fraction]:
    bonus = []
    for line, share in zip(lines, base, strict=True):
        if not rule_matches(rule, line):
            bonus.append(Fraction(0))
        elif rule.kind == "multiplier":
            bonus.append(share * ((rule.multiplier_bps or 0) - FULL_BPS) / FULL_BPS)
        else:
            bonus.append(Fraction((rule.points_per_unit or 0) * line.quantity))
    return bonus


def _cap(rule: EarningRule, day_left: int | None) -> int | None:
    caps = [c for c in (rule.cap_per_order, day_left) if c is not None]
    return min(caps) if caps else None


def _base_only(lines: list[Line], per: int, denominator: int) -> Earning:
    """`compute_points` without rules, in integers: every share is numerator / `denominator` (one common
    denominator), so the floors, the total and the largest remainders are those of the fractions."""
    numerators = [line.amount * per for line in lines]
    total = sum(numerators) // denominator
    points = [n // denominator for n in numerators]
    left = total - sum(points)
    order = sorted(range(len(lines)), key=lambda i: (-(numerators[i] % denominator), i))
    for i in order[:left]:
        points[i] += 1
    return Earning(
        total=total,
        base=total,
        item_points={line.item_id: p for line, p in zip(lines, points, strict=True)},
        item_rules={line.item_id: [] for line in lines},
        rule_points={},
    )


def compute_points(
    lines: list[Line],
    *,
    earn_points: int,
    earn_per_amount: int,
    tier_bps: int,
    rules: list[EarningRule],
    day_left: dict[str, int],
) -> Earning:
    """The order's points. `day_left[code]`: what a rule with `cap_per_member_day` may still add today."""
    if not rules:
        return _base_only(lines, earn_points * tier_bps, earn_per_amount * FULL_BPS)
    base = [Fraction(line.amount * earn_points * tier_bps, earn_per_amount * FULL_BPS) for line in lines]
    shares = list(base)
    item_rules: dict[str, list[str]] = {line.item_id: [] for line in lines}
    rule_points: dict[str, int] = {}
    for rule in rules:
        bonus = _rule_bonus(rule, lines, base)
        for line in lines:
            if rule_matches(rule, line):
                item_rules[line.item_id].append(rule.code)
        raw = sum(bonus, Fraction(0))
        if raw > 0:
            whole = raw.numerator // raw.denominator
            cap = _cap(rule, day_left.get(rule.code))
            whole = min(whole, max(cap, 0)) if cap is not None else whole
            # Scale every item's bonus so the rule adds exactly `whole` points, in proportion.
            bonus = [b * whole / raw for b in bonus]
            if whole:
                rule_points[rule.code] = whole
        shares = [s + b for s, b in zip(shares, bonus, strict=True)]
    shares = [max(share, Fraction(0)) for share in shares]
    exact = sum(shares, Fraction(0))
    total = exact.numerator // exact.denominator
    points = allocate(total, shares)
    base_total = sum(base, Fraction(0))
    return Earning(
        total=total,
        base=base_total.numerator // base_total.denominator,
        item_points={line.item_id: p for line, p in zip(lines, points, strict=True)},
        item_rules=item_rules,
        rule_points=rule_points,
    )
