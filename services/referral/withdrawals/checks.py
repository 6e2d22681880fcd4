"""`ledger verify` checks of the withdrawals: the rows and the journal tell the same story.

(w1) Per member, commission_withdrawing = Σ amount of its open (requested or approved) withdrawals.
(w2) Each withdrawal has exactly the entries its status implies: the request, plus the complete,
     reject or fail entry once it is completed, rejected or failed (approval moves no money); a
     status that needs approval (approved, completed, failed) carries approved_at.
"""

from __future__ import annotations

from shared.ledger import Check

__all__ = ["WITHDRAWAL_CHECKS"]

WITHDRAWAL_CHECKS: tuple[Check, ...] = (
    Check(
        "9w1-withdrawing-equals-open-withdrawals",
        """
        WITH open AS (
            SELECT w.tenant_id, w.member_id, sum(w.amount) AS total
              FROM withdrawals w
             WHERE w.status IN ('requested', 'approved') AND ($1::text IS NULL OR w.tenant_id = $1)
             GROUP BY w.tenant_id, w.member_id
        ), ledger AS (
            SELECT a.tenant_id, a.owner_id AS member_id, a.credits_posted - a.debits_posted AS total
              FROM accounts a
             WHERE a.code = 'member:' || a.owner_id || ':commission_withdrawing'
               AND ($1::text IS NULL OR a.tenant_id = $1)
        )
        SELECT coalesce(o.tenant_id, l.tenant_id), 'member ' || coalesce(o.member_id, l.member_id),
               'open withdrawals ' || coalesce(o.total, 0) || ' <> commission_withdrawing ' || coalesce(l.total, 0)
          FROM open o
          FULL JOIN ledger l ON l.tenant_id = o.tenant_id AND l.member_id = o.member_id
         WHERE coalesce(o.total, 0) <> coalesce(l.total, 0)
        """,
    ),
    Check(
        "9w2-withdrawal-entries-match-status",
        """
        SELECT w.tenant_id, 'withdrawal ' || w.withdrawal_id,
               'status ' || w.status || ', approved_at ' || coalesce(w.approved_at::text, 'none') ||
               ', entries: ' || coalesce(string_agg(e.kind, ', ' ORDER BY e.kind), 'none')
          FROM withdrawals w
          LEFT JOIN entries e
            ON e.tenant_id = w.tenant_id
           AND e.idempotency_key IN ('withdrawal:' || w.withdrawal_id || ':request',
                                     'withdrawal:' || w.withdrawal_id || ':complete',
                                     'withdrawal:' || w.withdrawal_id || ':reject',
                                     'withdrawal:' || w.withdrawal_id || ':fail')
         WHERE ($1::text IS NULL OR w.tenant_id = $1)
         GROUP BY w.tenant_id, w.withdrawal_id, w.status, w.approved_at
        HAVING array_agg(e.kind ORDER BY e.kind) IS DISTINCT FROM
               CASE w.status
                    WHEN 'completed' THEN ARRAY['withdrawal.complete', 'withdrawal.request']
                    WHEN 'rejected' THEN ARRAY['withdrawal.reject', 'withdrawal.request']
                    WHEN 'failed' THEN ARRAY['withdrawal.fail', 'withdrawal.request']
                    ELSE ARRAY['withdrawal.request'] END
            OR (w.status IN ('approved', 'completed', 'failed') AND w.approved_at IS NULL)
        """,
    ),
)
