"""`ledger verify`: recompute the invariants of DESIGN §4.3 from the journal and list every violation.

Each check is one query that returns the offending rows; an empty result is a pass. Services add
their own checks (lots §5.6, commission states) with `extra_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

__all__ = ["Check", "Violation", "VerifyReport", "KERNEL_CHECKS", "verify"]


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    invariant: str
    tenant_id: str | None
    subject: str
    detail: str


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    checks: list[str]
    violations: list[Violation]


class Check(msgspec.Struct, frozen=True):
    """A named query returning (tenant_id, subject, detail) rows; $1 is the tenant or NULL for all."""

    invariant: str
    sql: str


KERNEL_CHECKS: tuple[Check, ...] = (
    Check(
        "1-entry-balances",
        """
        SELECT e.tenant_id, 'entry ' || e.entry_id,
               'legs: ' || count(p.leg) || ', unbalanced assets: ' ||
               coalesce((SELECT string_agg(x.asset || ' ' || x.total, ', ')
                           FROM (SELECT q.asset, sum(q.amount) AS total FROM postings q
                                  WHERE q.tenant_id = e.tenant_id AND q.entry_id = e.entry_id
                                  GROUP BY q.asset HAVING sum(q.amount) <> 0) x), 'none')
          FROM entries e
          LEFT JOIN postings p ON p.tenant_id = e.tenant_id AND p.entry_id = e.entry_id
         WHERE ($1::text IS NULL OR e.tenant_id = $1)
         GROUP BY e.tenant_id, e.entry_id
        HAVING count(p.leg) < 2 OR EXISTS (
               SELECT 1 FROM postings q WHERE q.tenant_id = e.tenant_id AND q.entry_id = e.entry_id
                GROUP BY q.asset HAVING sum(q.amount) <> 0)
        """,
    ),
    Check(
        "2-trial-balance",
        """
        SELECT p.tenant_id, 'asset ' || p.asset,
               'debits ' || sum(p.amount) FILTER (WHERE p.amount > 0) ||
               ' <> credits ' || -sum(p.amount) FILTER (WHERE p.amount < 0)
          FROM postings p
         WHERE ($1::text IS NULL OR p.tenant_id = $1)
         GROUP BY p.tenant_id, p.asset
        HAVING sum(p.amount) <> 0
        """,
    ),
    Check(
        "3-counters-equal-postings",
        """
        SELECT a.tenant_id, 'account ' || a.code,
               'counters ' || a.debits_posted || '/' || a.credits_posted ||
               ' but postings ' || coalesce(s.debits, 0) || '/' || coalesce(s.credits, 0)
          FROM accounts a
          LEFT JOIN (SELECT p.tenant_id, p.account_id,
                            sum(p.amount) FILTER (WHERE p.amount > 0) AS debits,
                            -sum(p.amount) FILTER (WHERE p.amount < 0) AS credits
                       FROM postings p WHERE ($1::text IS NULL OR p.tenant_id = $1)
                      GROUP BY p.tenant_id, p.account_id) s
            ON s.tenant_id = a.tenant_id AND s.account_id = a.account_id
         WHERE ($1::text IS NULL OR a.tenant_id = $1)
           AND CASE WHEN a.track_balance
                    THEN (a.debits_posted, a.credits_posted) <> (coalesce(s.debits, 0), coalesce(s.credits, 0))
                    ELSE (a.debits_posted, a.credits_posted) <> (0, 0) END
        """,
    ),
    Check(
        "4-no-overdraft",
        """
        SELECT a.tenant_id, 'account ' || a.code, 'debits ' || s.debits || ', credits ' || s.credits
          FROM accounts a
          JOIN (SELECT p.tenant_id, p.account_id,
                       coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0) AS debits,
                       coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0) AS credits
                  FROM postings p WHERE ($1::text IS NULL OR p.tenant_id = $1)
                 GROUP BY p.tenant_id, p.account_id) s
            ON s.tenant_id = a.tenant_id AND s.account_id = a.account_id
         WHERE (a.debits_must_not_exceed_credits AND s.debits > s.credits)
            OR (a.credits_must_not_exceed_debits AND s.credits > s.debits)
        """,
    ),
    Check(
        "6-reversal-negates-original",
        """
        SELECT r.tenant_id, 'reversal ' || r.entry_id, 'does not negate entry ' || r.reverses_entry_id
          FROM entries r
         WHERE r.reverses_entry_id IS NOT NULL AND ($1::text IS NULL OR r.tenant_id = $1)
           AND EXISTS (
               (SELECT p.account_id, p.asset, -p.amount FROM postings p
                 WHERE p.tenant_id = r.tenant_id AND p.entry_id = r.reverses_entry_id
                EXCEPT ALL
                SELECT q.account_id, q.asset, q.amount FROM postings q
                 WHERE q.tenant_id = r.tenant_id AND q.entry_id = r.entry_id)
               UNION ALL
               (SELECT q.account_id, q.asset, q.amount FROM postings q
                 WHERE q.tenant_id = r.tenant_id AND q.entry_id = r.entry_id
                EXCEPT ALL
                SELECT p.account_id, p.asset, -p.amount FROM postings p
                 WHERE p.tenant_id = r.tenant_id AND p.entry_id = r.reverses_entry_id))
        UNION ALL
        SELECT r.tenant_id, 'entry ' || r.reverses_entry_id, count(*) || ' reversals'
          FROM entries r
         WHERE r.reverses_entry_id IS NOT NULL AND ($1::text IS NULL OR r.tenant_id = $1)
         GROUP BY r.tenant_id, r.reverses_entry_id HAVING count(*) > 1
        """,
    ),
    Check(
        "7-one-entry-per-key",
        """
        SELECT e.tenant_id, 'key ' || e.idempotency_key, count(*) || ' entries'
          FROM entries e WHERE ($1::text IS NULL OR e.tenant_id = $1)
         GROUP BY e.tenant_id, e.idempotency_key HAVING count(*) > 1
        """,
    ),
    Check(
        "8-journal-guards-in-force",
        """
        SELECT NULL::text, 'trigger ' || want.name, 'missing or disabled'
          FROM (VALUES ('postings_apply'), ('postings_append_only'), ('postings_no_truncate'),
                       ('entries_append_only'), ('entries_no_truncate'), ('entries_have_legs'),
                       ('accounts_guard'), ('accounts_no_truncate')) AS want(name)
         WHERE NOT EXISTS (
               SELECT 1 FROM pg_trigger t
                 JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE t.tgname = want.name AND n.nspname = current_schema() AND t.tgenabled IN ('O', 'A'))
           AND $1::text IS NOT DISTINCT FROM $1::text  -- structural, for every tenant; $1 keeps one call shape
        """,
    ),
)


async def verify(
    conn: asyncpg.Connection, tenant_id: str | None = None, extra_checks: Sequence[Check] = ()
) -> VerifyReport:
    """Run every check in one repeatable-read snapshot, so concurrent writes cannot fake a violation."""
    checks = (*KERNEL_CHECKS, *extra_checks)
    violations: list[Violation] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for check in checks:
            for row in await conn.fetch(check.sql, tenant_id):
                violations.append(Violation(invariant=check.invariant, tenant_id=row[0], subject=row[1], detail=row[2]))
    return VerifyReport(ok=not violations, checks=[c.invariant for c in checks], violations=violations)
