"""The loyalty chart of accounts (DESIGN §4.2), asset PTS (points, scale 0)."""

from __future__ import annotations

import asyncpg

__all__ = [
    "ASSET",
    "EXPIRED",
    "ISSUED",
    "REDEEMED",
    "debt",
    "held",
    "open_member_accounts",
    "pending",
    "points",
]

ASSET = "PTS"
ISSUED = "program:points_issued"
REDEEMED = "program:points_redeemed"
EXPIRED = "program:points_expired"


def points(member_id: str) -> str:
    """Available points: Σ remaining of the member's live lots (§4.3 item 5)."""
    return f"member:{member_id}:points"


def pending(member_id: str) -> str:
    return f"member:{member_id}:points_pending"


def held(member_id: str) -> str:
    return f"member:{member_id}:points_held"


def debt(member_id: str) -> str:
    return f"member:{member_id}:points_debt"


# The member's four accounts and the programme's three, in one statement; existing ones are kept.
# Member accounts are tracked with no overdraft on their normal side (debt too: repaying more than is
# owed is refused by the row's CHECK); programme accounts are hot, so untracked and unlimited.
_OPEN = """
INSERT INTO accounts (tenant_id, code, asset, owner_id, normal_side,
                      debits_must_not_exceed_credits, credits_must_not_exceed_debits, track_balance)
SELECT $1, a.code, 'PTS', a.owner, a.side, a.side = 'credit' AND a.tracked, a.side = 'debit' AND a.tracked, a.tracked
  FROM (VALUES ('member:' || $2 || ':points', $2, 'credit', true),
               ('member:' || $2 || ':points_pending', $2, 'credit', true),
               ('member:' || $2 || ':points_held', $2, 'credit', true),
               ('member:' || $2 || ':points_debt', $2, 'debit', true),
               ('program:points_issued', NULL, 'debit', false),
               ('program:points_redeemed', NULL, 'credit', false),
               ('program:points_expired', NULL, 'credit', false)) AS a(code, owner, side, tracked)
ON CONFLICT (tenant_id, code) DO NOTHING
"""


async def open_member_accounts(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    """Idempotent; members registration calls it, so every known member can be posted to."""
    await conn.execute(_OPEN, tenant_id, member_id)
