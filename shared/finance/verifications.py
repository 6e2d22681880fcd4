"""The nightly `verify-ledger` job (§4.3, §7): `ledger verify` per tenant, recorded with its time.

A tenant is due when it has no verification recorded at or after the run's `as_of`; each result is a
row in `ledger_verifications`, so a run killed half-way resumes with the tenants it had not reached, and
a re-run with the same `as_of` verifies nothing twice. Verification only reads, so a tenant checked
twice after a crash between its check and its row costs time, never correctness.

Metrics (this process's view: the replica that ran the job, or none after a restart until it runs):
`ledger_verification_failing_tenants`, `ledger_verification_violations`,
`ledger_verification_last_checked_timestamp_seconds`, `ledger_verifications_total{result}`.
The admin endpoint reads the table, so it is the same on every replica.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import asyncpg
import msgspec
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.errors import DomainError
from shared.jobs import Job, JobContext
from shared.ledger import Check, VerifyReport, Violation, verify

__all__ = ["VERIFY_LEDGER_NAME", "LedgerVerification", "latest_verification", "verify_ledger_job"]

VERIFY_LEDGER_NAME = "verify-ledger"
KEPT_VIOLATIONS = 100  # stored per run; the count is always exact

VERIFICATIONS = Counter("ledger_verifications", "Ledger verifications by service and result", ["service", "result"])


class LedgerVerification(msgspec.Struct, frozen=True, kw_only=True):
    verification_id: int
    as_of: datetime
    checked_at: datetime
    ok: bool
    checks: list[str]
    violation_count: int
    violations: list[Violation]  # the first KEPT_VIOLATIONS


_DUE = """
SELECT t.tenant_id FROM tenants t
 WHERE ($1::text IS NULL OR t.tenant_id = $1)
   AND NOT EXISTS (SELECT 1 FROM ledger_verifications v WHERE v.tenant_id = t.tenant_id AND v.as_of >= $2)
 ORDER BY t.tenant_id
 LIMIT $3
"""

_RECORD = """
INSERT INTO ledger_verifications (tenant_id, as_of, ok, checks, violation_count, violations)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)  -- encoded here: the same with or without a json codec
RETURNING checked_at
"""

_LATEST = """
SELECT verification_id, as_of, checked_at, ok, checks, violation_count, violations
  FROM ledger_verifications WHERE tenant_id = $1 ORDER BY verification_id DESC LIMIT 1
"""


class _Latest(Collector):
    """Per service: tenants failing, violations and the newest check, from this process's last results."""

    def __init__(self) -> None:
        self.by_tenant: dict[tuple[str, str], tuple[int, float]] = {}

    def record(self, service: str, tenant_id: str, violations: int, checked_at: datetime) -> None:
        self.by_tenant[(service, tenant_id)] = (violations, checked_at.timestamp())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        failing = GaugeMetricFamily(
            "ledger_verification_failing_tenants",
            "Tenants whose latest verification found violations",
            labels=["service"],
        )
        count = GaugeMetricFamily(
            "ledger_verification_violations", "Violations in the latest verification of each tenant", labels=["service"]
        )
        newest = GaugeMetricFamily(
            "ledger_verification_last_checked_timestamp_seconds", "When a tenant was last verified", labels=["service"]
        )
        services: dict[str, list[float]] = {}
        for (service, _tenant), (violations, at) in list(self.by_tenant.items()):
            agg = services.setdefault(service, [0, 0, 0.0])
            agg[0] += violations > 0
            agg[1] += violations
            agg[2] = max(agg[2], at)
        for service, (tenants, violations, at) in services.items():
            failing.add_metric([service], tenants)
            count.add_metric([service], violations)
            newest.add_metric([service], at)
        yield from (failing, count, newest)


LATEST = _Latest()
REGISTRY.register(LATEST)

_encode = msgspec.json.Encoder().encode


async def record_verification(
    conn: asyncpg.Connection, service: str, tenant_id: str, as_of: datetime, report: VerifyReport
) -> None:
    kept = _encode(report.violations[:KEPT_VIOLATIONS]).decode()
    checked_at = await conn.fetchval(_RECORD, tenant_id, as_of, report.ok, report.checks, len(report.violations), kept)
    VERIFICATIONS.labels(service, "ok" if report.ok else "violations").inc()
    LATEST.record(service, tenant_id, len(report.violations), checked_at)


def verify_ledger_job(checks: Sequence[Check]) -> Job:
    """The job for a service whose `ledger verify` runs the kernel's checks plus `checks`."""
    extra = tuple(checks)

    async def batch(pool: asyncpg.Pool, ctx: JobContext) -> int:
        async with pool.acquire() as conn:
            due = await conn.fetch(_DUE, ctx.tenant_id, ctx.as_of, ctx.batch_size)
            for row in due:
                report = await verify(conn, row["tenant_id"], extra)
                await record_verification(conn, ctx.settings.service, row["tenant_id"], ctx.as_of, report)
        return len(due)

    return Job(
        name=VERIFY_LEDGER_NAME,
        description="Recompute the ledger invariants of every tenant and record the result (nightly)",
        batch=batch,
        interval_seconds=86_400.0,
    )


async def latest_verification(conn: asyncpg.Connection, tenant_id: str) -> LedgerVerification:
    row = await conn.fetchrow(_LATEST, tenant_id)
    if row is None:
        raise DomainError("verification-not-found", 404, "this tenant's ledger has not been verified yet")
    return msgspec.convert({**dict(row), "violations": row["violations"]}, LedgerVerification, from_attributes=False)
