"""The referral liability (DESIGN §7): commission owed to members, in the tenant's currency, and the one
table mapping every entry kind the service posts to a roll-forward line (`GET /v1/reports/liability`,
`ops liability`).

Liability = Σ member `commission_frozen` + `commission_available` + `commission_withdrawing` −
`commission_debt` (debt is owed by the member). A kind missing here lands in `other`.
"""

from __future__ import annotations

import asyncpg

from services.referral import accounts
from shared.ledger.liability import Category, LiabilitySpec, LineDef

__all__ = ["COMMISSION_LIABILITY"]


async def _asset(conn: asyncpg.Connection, tenant_id: str) -> str:
    return await accounts.tenant_currency(conn, tenant_id)


COMMISSION_LIABILITY = LiabilitySpec(
    name="commission",
    asset=_asset,
    categories=(
        Category("commission_frozen"),
        Category("commission_available"),
        Category("commission_withdrawing"),
        Category("commission_debt", -1),
    ),
    lines=(
        LineDef("accrued", 1, ("commission.accrue",), "accrued on paid orders (frozen)"),
        LineDef("reversed", -1, ("commission.reverse",), "taken back by refunds (frozen, available, then debt)"),
        LineDef("paid", -1, ("withdrawal.complete",), "withdrawals paid: cash out plus the fee kept"),
        LineDef("released", 0, ("commission.release",), "frozen to available (or to repay debt)"),
        LineDef("withdrawal_requested", 0, ("withdrawal.request",), "available to withdrawing"),
        LineDef("withdrawal_returned", 0, ("withdrawal.reject", "withdrawal.fail"), "withdrawing back to available"),
    ),
    ageing_role="commission_available",
    memos=(
        ("paid_out", "paid", accounts.PAYOUTS),
        ("fees", "paid", accounts.FEES),
    ),
)
