"""The loyalty liability (DESIGN §7): points owed to members, in PTS, and the one table mapping every
entry kind the service posts to a roll-forward line (`GET /v1/reports/liability`, `ops liability`).

Liability = Σ member `points` + `points_pending` + `points_held` − `points_debt` (debt is owed by the
member: a receivable netted against what is owed to them). A kind missing here lands in `other`.
"""

from __future__ import annotations

import asyncpg

from services.loyalty import accounts
from shared.ledger.liability import Category, LiabilitySpec, LineDef

__all__ = ["POINTS_LIABILITY"]


async def _asset(conn: asyncpg.Connection, tenant_id: str) -> str:
    return accounts.ASSET


POINTS_LIABILITY = LiabilitySpec(
    name="points",
    asset=_asset,
    categories=(
        Category("points"),
        Category("points_pending"),
        Category("points_held"),
        Category("points_debt", -1),
    ),
    lines=(
        LineDef("issued", 1, ("points.earn", "points.task", "plan.bonus"), "earned from orders, tasks, plan bonuses"),
        LineDef(
            "redeemed",
            -1,
            ("points.redeem", "points.hold_capture", "points.redeem_cancel"),
            "spent on rewards and at checkout, net of cancelled redemptions",
        ),
        LineDef("expired", -1, ("points.expire",), "lots expired (breakage)"),
        LineDef("reversed", -1, ("points.reverse", "plan.refund"), "taken back by refunds of orders and plans"),
        LineDef("adjusted", 1, ("points.adjust",), "operator adjustments, net (credits minus debits)"),
        LineDef("released", 0, ("points.release",), "pending to available (or to repay debt)"),
        LineDef("held", 0, ("points.hold",), "available to held at checkout"),
        LineDef("hold_returned", 0, ("points.hold_void", "points.hold_expire"), "held back to available"),
    ),
    breakage=("expired", "issued"),
)
