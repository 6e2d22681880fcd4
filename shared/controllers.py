"""The endpoints every service has: health, tenants and keys (operator), ledger verification (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter

from shared.auth import Principal, requires_admin
from shared.errors import DomainError
from shared.http import PublicOperation, problem_responses
from shared.jobs import JobResult, JobRunIn, find_job, run_job
from shared.ledger import VerifyReport, verify
from shared.tenants import ApiKeyIn, IssuedKey, Tenant, TenantIn, get_tenant, issue_api_key, upsert_tenant

__all__ = ["HealthController", "JobController", "LedgerController", "TenantController"]

JobName = Annotated[str, PathParameter(pattern=r"^[a-z-]{1,64}$", min_length=1, max_length=64)]
TenantId = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64)]


class HealthController(Controller):
    path = "/"
    tags = ["health"]
    opt = {"public": True}

    @get(
        "/livez",
        operation_id="livez",
        summary="The process is alive (no I/O)",
        responses=problem_responses(database=False),
        operation_class=PublicOperation,
    )
    async def livez(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/readyz",
        operation_id="readyz",
        summary="The database can serve a query",
        responses=problem_responses(503),
        operation_class=PublicOperation,
    )
    async def readyz(self, state: State) -> dict[str, str]:
        pool: asyncpg.Pool = state.pool
        try:  # bounded twice: a pool with no free connection cannot serve either
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DomainError("unavailable", 503, f"database unavailable: {type(exc).__name__}") from None
        return {"status": "ready"}


class TenantController(Controller):
    """Provisioning with the operator token; off when OPERATOR_TOKEN is unset (404)."""

    path = "/v1/tenants"
    tags = ["operator"]
    opt = {"operator": True}

    @put(
        "/{tenant_id:str}",
        operation_id="upsertTenant",
        summary="Create or update a tenant",
        responses={201: ResponseSpec(Tenant, description="Created"), **problem_responses(401, 404, 409, 422)},
        status_code=200,
    )
    async def upsert(
        self, tenant_id: TenantId, data: JSONBody[TenantIn], db: NamedDependency[asyncpg.Connection]
    ) -> Response[Tenant]:
        tenant, created = await upsert_tenant(db, tenant_id, data)
        return Response(tenant, status_code=201 if created else 200)

    @get(
        "/{tenant_id:str}",
        operation_id="getTenant",
        summary="Read a tenant",
        responses=problem_responses(401, 404),
    )
    async def read(self, tenant_id: TenantId, db: NamedDependency[asyncpg.Connection]) -> Tenant:
        return await get_tenant(db, tenant_id)

    @post(
        "/{tenant_id:str}/api-keys",
        operation_id="issueApiKey",
        summary="Issue an API key (the secret is shown once)",
        description="Idempotent by `key_id`: a retry with the same body returns 200 and the key's metadata "
        "with `key: null`, because the secret is never stored; other scopes or label are 409.",
        responses={
            200: ResponseSpec(IssuedKey, description="Replay: metadata, no secret"),
            **problem_responses(401, 404, 409),
        },
        status_code=201,
    )
    async def issue_key(
        self, tenant_id: TenantId, data: JSONBody[ApiKeyIn], db: NamedDependency[asyncpg.Connection]
    ) -> Response[IssuedKey]:
        issued, created = await issue_api_key(db, tenant_id, data)
        return Response(issued, status_code=201 if created else 200)


class LedgerController(Controller):
    path = "/v1/ledger"
    tags = ["ledger"]
    guards = [requires_admin]

    @get(
        "/verify",
        operation_id="verifyLedger",
        summary="Recompute the ledger invariants (§4.3) for this tenant and list violations",
        responses=problem_responses(401, 403),
    )
    async def verify_ledger(
        self, request: Request[Principal, Any, Any], state: State, conn: NamedDependency[asyncpg.Connection]
    ) -> VerifyReport:
        return await verify(conn, request.user.tenant_id, state.verify_checks)


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    interval_seconds: float


class JobController(Controller):
    """The jobs of §8 for this tenant only; the scheduler and the CLI run them for every tenant."""

    path = "/v1/jobs"
    tags = ["jobs"]
    guards = [requires_admin]

    @get("/", operation_id="listJobs", summary="The jobs this service runs", responses=problem_responses(401, 403))
    async def list_jobs(self, state: State) -> list[JobInfo]:
        return [
            JobInfo(name=j.name, description=j.description, interval_seconds=j.interval_seconds) for j in state.jobs
        ]

    @post(
        "/{name:str}",
        operation_id="runJob",
        summary="Run a job now for this tenant, as of a time (default now), until nothing is due",
        description="Idempotent: items already processed are not processed again, so running it twice "
        "does nothing the second time. `max_batches` stops early, as a killed run would.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def run(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        name: JobName,
        data: JSONBody[JobRunIn],
    ) -> JobResult:
        job = find_job(state.jobs, name)
        result = await run_job(
            state.pool,
            job,
            state.settings,
            tenant_id=request.user.tenant_id,
            as_of=data.as_of,
            batch_size=data.batch_size,
            max_batches=data.max_batches,
            trigger="http",
        )
        if result.status == "skipped":
            raise DomainError("job-running", 409, f"job {name} is already running for this tenant; retry later")
        return result
