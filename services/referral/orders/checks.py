"""§4.3 item 9 for `ledger verify`: commission rows and the members' commission accounts agree.

Every row is in one state: `frozen` (in commission_frozen), `released` (moved out of frozen by its
release entry), or `reversed` (nothing left: refunds took back all of it, before or after release).
`reversed_amount` counts all that refunds took back, including `written_off`, the part the `cap`
clawback policy could not recover (no posting: the programme bears it).

Per member, with balances on each account's normal side and "released" meaning rows that have a
release entry (state `released`, or `reversed` after release):

(a) Σ (amount − reversed_amount) over `frozen` rows = commission_frozen.

(b) Σ (amount − reversed_amount + written_off) over released rows
        = commission_available + commission_withdrawing + Σ amount of completed withdrawals − commission_debt.
    Why: a release credits its net to available, less what repays debt (a debt credit); a refund after
    release takes from available, books the shortfall to debt (`debt`) or writes it off (`cap`);
    withdrawals move available to withdrawing and, once completed, out to the programme (rejected or
    failed ones come back). So available + withdrawing + paid out = Σ net at release − repaid − taken,
    debt = booked − repaid, and taken + booked = reversed after release − written_off.

(c) Each row is consistent with itself and its order: state `reversed` iff nothing is left;
    `released` iff it has a release entry and time, `frozen` iff neither; written_off only after
    release and within reversed_amount; amount = floor(base × rate / 10000); reversed_amount =
    floor(amount × refunded / paid) of its item (the cumulative refund rule).
"""

from __future__ import annotations

from shared.ledger import Check

__all__ = ["COMMISSION_CHECKS"]

COMMISSION_CHECKS: tuple[Check, ...] = (
    Check(
        "9a-frozen-rows-equal-frozen-account",
        """
        WITH rows AS (
            SELECT c.tenant_id, c.beneficiary_id AS member_id, sum(c.amount - c.reversed_amount) AS total
              FROM commission_items c
             WHERE c.state = 'frozen' AND ($1::text IS NULL OR c.tenant_id = $1)
             GROUP BY c.tenant_id, c.beneficiary_id
        ), ledger AS (
            SELECT a.tenant_id, a.owner_id AS member_id, coalesce(-sum(p.amount), 0) AS total
              FROM accounts a
              LEFT JOIN postings p ON p.tenant_id = a.tenant_id AND p.account_id = a.account_id
             WHERE a.code = 'member:' || a.owner_id || ':commission_frozen' AND ($1::text IS NULL OR a.tenant_id = $1)
             GROUP BY a.tenant_id, a.account_id, a.owner_id
        )
        SELECT coalesce(r.tenant_id, l.tenant_id), 'member ' || coalesce(r.member_id, l.member_id),
               'frozen commission rows ' || coalesce(r.total, 0) || ' <> commission_frozen ' || coalesce(l.total, 0)
          FROM rows r
          FULL JOIN ledger l ON l.tenant_id = r.tenant_id AND l.member_id = r.member_id
         WHERE coalesce(r.total, 0) <> coalesce(l.total, 0)
        """,
    ),
    Check(
        "9b-released-rows-equal-member-balances",
        """
        WITH rows AS (
            SELECT c.tenant_id, c.beneficiary_id AS member_id,
                   sum(c.amount - c.reversed_amount + c.written_off) AS total
              FROM commission_items c
             WHERE c.release_entry_id IS NOT NULL AND ($1::text IS NULL OR c.tenant_id = $1)
             GROUP BY c.tenant_id, c.beneficiary_id
        ), paid_out AS (
            SELECT w.tenant_id, w.member_id, sum(w.amount) AS total
              FROM withdrawals w
             WHERE w.status = 'completed' AND ($1::text IS NULL OR w.tenant_id = $1)
             GROUP BY w.tenant_id, w.member_id
        ), ledger AS (
            -- available + withdrawing (credit-normal) − debt (debit-normal) = −Σ postings of the three
            SELECT a.tenant_id, a.owner_id AS member_id, coalesce(-sum(p.amount), 0) AS total
              FROM accounts a
              LEFT JOIN postings p ON p.tenant_id = a.tenant_id AND p.account_id = a.account_id
             WHERE a.code IN ('member:' || a.owner_id || ':commission_available',
                              'member:' || a.owner_id || ':commission_withdrawing',
                              'member:' || a.owner_id || ':commission_debt')
               AND ($1::text IS NULL OR a.tenant_id = $1)
             GROUP BY a.tenant_id, a.owner_id
        ), members AS (
            SELECT tenant_id, member_id FROM rows
            UNION SELECT tenant_id, member_id FROM paid_out
            UNION SELECT tenant_id, member_id FROM ledger
        )
        SELECT m.tenant_id, 'member ' || m.member_id,
               'released commission rows ' || coalesce(r.total, 0) || ' <> available + withdrawing − debt ' ||
               coalesce(l.total, 0) || ' + paid out ' || coalesce(w.total, 0)
          FROM members m
          LEFT JOIN rows r ON r.tenant_id = m.tenant_id AND r.member_id = m.member_id
          LEFT JOIN paid_out w ON w.tenant_id = m.tenant_id AND w.member_id = m.member_id
          LEFT JOIN ledger l ON l.tenant_id = m.tenant_id AND l.member_id = m.member_id
         WHERE coalesce(r.total, 0) <> coalesce(l.total, 0) + coalesce(w.total, 0)
        """,
    ),
    Check(
        "9c-commission-rows-consistent",
        """
        SELECT c.tenant_id, 'commission ' || c.order_id || '/' || c.item_id || '/L' || c.level,
               'state ' || c.state || ', amount ' || c.amount || ', reversed ' || c.reversed_amount ||
               ', written off ' || c.written_off || ', release entry ' || coalesce(c.release_entry_id::text, 'none') ||
               ', item paid ' || i.amount || ' refunded ' || i.refunded_amount
          FROM commission_items c
          JOIN order_items i ON i.tenant_id = c.tenant_id AND i.order_id = c.order_id AND i.item_id = c.item_id
         WHERE ($1::text IS NULL OR c.tenant_id = $1)
           AND ((c.state = 'reversed') <> (c.reversed_amount = c.amount)
                OR (c.state = 'released') <> (c.release_entry_id IS NOT NULL AND c.released_at IS NOT NULL
                                              AND c.reversed_amount < c.amount)
                OR (c.state = 'frozen') <> (c.release_entry_id IS NULL AND c.released_at IS NULL
                                            AND c.reversed_amount < c.amount)
                OR c.written_off > c.reversed_amount
                OR (c.written_off > 0 AND c.release_entry_id IS NULL)
                OR c.base_amount <> i.amount
                -- numeric: amounts up to 2^53 times a rate or an amount overflow bigint
                OR c.amount <> floor(c.base_amount::numeric * c.rate_bps / 10000)
                OR c.reversed_amount <> floor(c.amount::numeric * i.refunded_amount / nullif(i.amount, 0)))
        """,
    ),
)
