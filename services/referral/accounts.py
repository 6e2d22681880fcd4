"""The referral chart of accounts (DESIGN §4.2), in the tenant's currency."""

from __future__ import annotations

import asyncpg

from shared.errors import DomainError

__all__ = [
    "EXPENSE",
    "FEES",
    "PAYOUTS",
    "available",
    "debt",
    "frozen",
    "open_member_accounts",
    "tenant_currency",
    "withdrawing",
]

EXPENSE = "program:commission_expense"
PAYOUTS = "program:payouts"
FEES = "program:withdrawal_fees"


def frozen(member_id: str) -> str:
    return f"member:{member_id}:commission_frozen"


def available(member_id: str) -> str:
    return f"member:{member_id}:commission_available"


def withdrawing(member_id: str) -> str:
    return f"member:{member_id}:commission_withdrawing"


def debt(member_id: str) -> str:
    return f"member:{member_id}:commission_debt"


# The member's four accounts and the programme's three, in one statement; existing ones are kept.
# Member accounts are tracked with no overdraft on their normal side (debt too: repaying more than
# is owed is refused by the row's CHECK); programme accounts are hot, so untracked and unlimited.
_OPEN = """
INSERT INTO accounts (tenant_id, code, asset, owner_id, normal_side,
                      debits_must_not_exceed_credits, credits_must_not_exceed_debits, track_balance)
SELECT $1, a.code, $3, a.owner, a.side, a.side = 'credit' AND a.tracked, a.side = 'debit' AND a.tracked, a.tracked
  FROM (VALUES ('member:' || $2 || ':commission_frozen', $2, 'credit', true),
               ('member:' || $2 || ':commission_available', $2, 'credit', true),
               ('member:' || $2 || ':commission_withdrawing', $2, 'credit', true),
               ('member:' || $2 || ':commission_debt', $2, 'debit', true),
               ('program:commission_expense', NULL, 'debit', false),
               ('program:payouts', NULL, 'credit', false),
               ('program:withdrawal_fees', NULL, 'credit', false)) AS a(code, owner, side, tracked)
ON CONFLICT (tenant_id, code) DO NOTHING
"""

_CURRENCY = "SELECT currency FROM tenants WHERE tenant_id = $1"


async def tenant_currency(conn: asyncpg.Connection, tenant_id: str) -> str:
    currency = await conn.fetchval(_CURRENCY, tenant_id)
    if currency is None:
        raise DomainError("tenant-not-found", 404, f"tenant {tenant_id} does not exist")
    return str(currency)


async def open_member_accounts(conn: asyncpg.Connection, tenant_id: str, member_id: str, currency: str) -> None:
    await conn.execute(_OPEN, tenant_id, member_id, currency)
