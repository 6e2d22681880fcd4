"""§4.3 item 5 for `ledger verify`: a member's available points are their live lots.

(a) Per member, Σ remaining over their lots = the balance of member:{id}:points (credit-normal).
    Members are the rows of `members` (lots reference them): a points account whose owner was never
    registered belongs to no member of this domain (kernel tests post to such accounts directly).
(b) Per lot, 0 ≤ remaining ≤ amount, and amount − remaining = Σ (points − restored) over its
    allocations: every point that left a lot is accounted for by an operation (spend, hold, expiry...).
"""

from __future__ import annotations

from shared.ledger import Check

__all__ = ["LOT_CHECKS"]

LOT_CHECKS: tuple[Check, ...] = (
    Check(
        "5a-available-equals-live-lots",
        """
        WITH lots_total AS (
            SELECT l.tenant_id, l.member_id, sum(l.remaining) AS total
              FROM lots l
             WHERE ($1::text IS NULL OR l.tenant_id = $1)
             GROUP BY l.tenant_id, l.member_id
        ), ledger AS (
            SELECT a.tenant_id, a.owner_id AS member_id, a.credits_posted - a.debits_posted AS total
              FROM accounts a
              JOIN members m ON m.tenant_id = a.tenant_id AND m.member_id = a.owner_id
             WHERE a.code = 'member:' || a.owner_id || ':points' AND ($1::text IS NULL OR a.tenant_id = $1)
        )
        SELECT coalesce(l.tenant_id, g.tenant_id), 'member ' || coalesce(l.member_id, g.member_id),
               'remaining in lots ' || coalesce(l.total, 0) || ' <> points available ' || coalesce(g.total, 0)
          FROM lots_total l
          FULL JOIN ledger g ON g.tenant_id = l.tenant_id AND g.member_id = l.member_id
         WHERE coalesce(l.total, 0) <> coalesce(g.total, 0)
        """,
    ),
    Check(
        "5b-lot-remaining-consistent",
        """
        SELECT l.tenant_id, 'lot ' || l.lot_id,
               'amount ' || l.amount || ', remaining ' || l.remaining || ', allocated and not restored ' ||
               coalesce(s.taken, 0)
          FROM lots l
          LEFT JOIN (SELECT a.tenant_id, a.lot_id, sum(a.points - a.restored) AS taken
                       FROM lot_allocations a WHERE ($1::text IS NULL OR a.tenant_id = $1)
                      GROUP BY a.tenant_id, a.lot_id) s
            ON s.tenant_id = l.tenant_id AND s.lot_id = l.lot_id
         WHERE ($1::text IS NULL OR l.tenant_id = $1)
           AND (l.remaining < 0 OR l.remaining > l.amount OR l.amount - l.remaining <> coalesce(s.taken, 0))
        """,
    ),
)
