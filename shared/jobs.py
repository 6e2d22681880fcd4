"""Scheduled jobs (§8): batched, idempotent, restartable, with `as_of`.

A job is a batch function: it processes at most `batch_size` due items for one tenant (or all) as of
a time and returns how many it did. The runner calls it until a batch comes back short, each batch in
its own transaction, so killing it between batches loses nothing and the next run picks up exactly
where the due-items predicate leaves off. Each item's ledger entry has a deterministic key, so even a
batch re-run after a crash posts nothing twice. A session advisory lock per (job, tenant scope) keeps
two replicas from running the same job at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
import structlog
from prometheus_client import Counter

from shared.errors import DomainError
from shared.settings import Settings

__all__ = [
    "JOB_ITEMS",
    "JOB_RUNS",
    "Job",
    "JobContext",
    "JobResult",
    "JobRunIn",
    "Scheduler",
    "find_job",
    "run_job",
    "transactional",
]

_log = structlog.get_logger("jobs")

JOB_RUNS = Counter("job_runs", "Job runs by job and outcome", ["job", "status"])
JOB_ITEMS = Counter("job_items_processed", "Items processed by jobs", ["job"])

Trigger = Literal["scheduler", "cli", "http", "test"]


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str | None  # None: every tenant
    as_of: datetime
    batch_size: int
    settings: Settings


BatchFn = Callable[[asyncpg.Pool, JobContext], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    batch: BatchFn
    interval_seconds: float = 60.0


def transactional(fn: Callable[[asyncpg.Connection, JobContext], Awaitable[int]]) -> BatchFn:
    """A batch that runs in one transaction of its own."""

    async def batch(pool: asyncpg.Pool, ctx: JobContext) -> int:
        async with pool.acquire() as conn, conn.transaction():
            return await fn(conn, ctx)

    return batch


class JobRunIn(msgspec.Struct, kw_only=True):
    as_of: Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with offset; default now")] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    max_batches: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class JobResult(msgspec.Struct, frozen=True, kw_only=True):
    job: str
    tenant_id: str | None
    as_of: datetime
    status: Literal["completed", "stopped", "skipped"]
    processed: int
    batches: int
    run_id: int | None


_START = """
INSERT INTO job_runs (job, tenant_id, as_of, trigger) VALUES ($1, $2, $3, $4) RETURNING run_id
"""
_FINISH = """
UPDATE job_runs SET status = $2, processed = $3, batches = $4, error = $5, finished_at = clock_timestamp()
 WHERE run_id = $1
"""
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"


def find_job(jobs: Sequence[Job], name: str) -> Job:
    for job in jobs:
        if job.name == name:
            return job
    raise DomainError("job-not-found", 404, f"no job named {name!r}; known: {', '.join(j.name for j in jobs)}")


async def run_job(
    pool: asyncpg.Pool,
    job: Job,
    settings: Settings,
    *,
    tenant_id: str | None,
    as_of: datetime | None = None,
    batch_size: int = 500,
    max_batches: int | None = None,
    trigger: Trigger = "cli",
) -> JobResult:
    """Run `job` until nothing is due (or `max_batches`, which stops it as a kill would)."""
    as_of = as_of or datetime.now(UTC)
    ctx = JobContext(tenant_id=tenant_id, as_of=as_of, batch_size=batch_size, settings=settings)
    lock_key = f"{settings.schema}:{job.name}:{tenant_id or '*'}"
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval(_TRY_LOCK, lock_key):
            JOB_RUNS.labels(job.name, "skipped").inc()
            return JobResult(
                job=job.name, tenant_id=tenant_id, as_of=as_of, status="skipped", processed=0, batches=0, run_id=None
            )
        try:
            run_id: int = await lock_conn.fetchval(_START, job.name, tenant_id, as_of, trigger)
            processed = batches = 0
            status: Literal["completed", "stopped"] = "completed"
            try:
                while True:
                    if max_batches is not None and batches >= max_batches:
                        status = "stopped"
                        break
                    done = await job.batch(pool, ctx)
                    batches += 1
                    processed += done
                    JOB_ITEMS.labels(job.name).inc(done)
                    if done < batch_size:
                        break
            except asyncio.CancelledError:
                # A shutdown between or inside batches: what was committed stays, the next run goes on.
                await lock_conn.execute(_FINISH, run_id, "stopped", processed, batches, "cancelled")
                JOB_RUNS.labels(job.name, "stopped").inc()
                raise
            except BaseException as exc:
                await lock_conn.execute(_FINISH, run_id, "failed", processed, batches, repr(exc)[:1000])
                JOB_RUNS.labels(job.name, "failed").inc()
                raise
            await lock_conn.execute(_FINISH, run_id, status, processed, batches, None)
            JOB_RUNS.labels(job.name, status).inc()
        finally:
            # Pooled connections are not reset (shared.db), so the session lock must be released here.
            await lock_conn.fetchval(_UNLOCK, lock_key)
    # An idle scheduled run (nothing due) is routine: debug, so the log shows only runs that did work.
    log = _log.debug if processed == 0 and status == "completed" and trigger == "scheduler" else _log.info
    log("job finished", job=job.name, tenant_id=tenant_id, processed=processed, batches=batches, status=status)
    return JobResult(
        job=job.name,
        tenant_id=tenant_id,
        as_of=as_of,
        status=status,
        processed=processed,
        batches=batches,
        run_id=run_id,
    )


class Scheduler:
    """Runs every job for all tenants on its interval, in one background task of the app."""

    def __init__(self, pool: asyncpg.Pool, jobs: Sequence[Job], settings: Settings) -> None:
        self._pool = pool
        self._jobs = tuple(jobs)
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._jobs:
            self._task = asyncio.create_task(self._loop(), name="job-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = {job.name: loop.time() for job in self._jobs}
        tick = self._settings.scheduler_tick_seconds
        while True:
            for job in self._jobs:
                if loop.time() < due[job.name]:
                    continue
                due[job.name] = loop.time() + job.interval_seconds
                try:
                    await run_job(self._pool, job, self._settings, tenant_id=None, trigger="scheduler")
                except Exception:  # one failing job must not stop the others; it is logged and counted
                    _log.exception("job failed", job=job.name)
            await asyncio.sleep(tick)
