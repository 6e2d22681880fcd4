"""`ledger verify` check of the holds: the rows and the journal tell the same story.

(5h) Per member with at least one hold row, member:{id}:points_held = Σ points of its holds still
     `held`. Members without holds are left out: lot tests post to a held account directly.
"""

from __future__ import annotations

from shared.ledger import Check

__all__ = ["HOLD_CHECKS"]

HOLD_CHECKS: tuple[Check, ...] = (
    Check(
        "5h-held-equals-open-holds",
        """
        WITH open AS (
            SELECT h.tenant_id, h.member_id, sum(h.points) AS total
              FROM holds h
             WHERE h.status = 'held' AND ($1::text IS NULL OR h.tenant_id = $1)
             GROUP BY h.tenant_id, h.member_id
        ), ledger AS (
            SELECT a.tenant_id, a.owner_id AS member_id, a.credits_posted - a.debits_posted AS total
              FROM accounts a
             WHERE a.code = 'member:' || a.owner_id || ':points_held'
               AND ($1::text IS NULL OR a.tenant_id = $1)
               AND EXISTS (SELECT 1 FROM holds h WHERE h.tenant_id = a.tenant_id AND h.member_id = a.owner_id)
        )
        SELECT coalesce(o.tenant_id, l.tenant_id), 'member ' || coalesce(o.member_id, l.member_id),
               'open holds ' || coalesce(o.total, 0) || ' <> points_held ' || coalesce(l.total, 0)
          FROM open o
          FULL JOIN ledger l ON l.tenant_id = o.tenant_id AND l.member_id = o.member_id
         WHERE coalesce(o.total, 0) <> coalesce(l.total, 0)
        """,
    ),
)
