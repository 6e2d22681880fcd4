"""Tasks: PUT /v1/tasks/{code} (admin), GET /v1/tasks; a member's completions and progress (client)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.tasks import service
from services.loyalty.tasks.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    Task,
    TaskCompletion,
    TaskCompletionIn,
    TaskIn,
    TaskProgress,
)
from shared.auth import Principal, requires_admin
from shared.http import outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = ["TaskController"]

TaskCode = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]
MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]


class TaskController(Controller):
    path = "/v1"
    tags = ["tasks"]

    @put(
        "/tasks/{code:str}",
        operation_id="putTask",
        summary="Create or replace a task",
        description="`points` per completion, at most `limit_per_period` completions per tenant-local `period` "
        "(`day`, ISO `week`, `month`, `lifetime`), `cooldown_seconds` apart. `streak.bonuses` pay extra on the "
        "completion that makes a run of consecutive days `day` long; `streak.reset` `gap` (default), `weekly` "
        "or `monthly`. `multipliers` in basis points by tier code (earned or plan tier) or plan code (active "
        "subscription): the highest that applies, else 1×. 422 `invalid-task` (duplicate or unreachable bonus "
        "days, a streak on a lifetime task, malformed multipliers), 422 `unknown-tier`. An inactive task "
        "(`active: false`) refuses completions.",
        responses={
            201: ResponseSpec(Task, description="Created", generate_examples=False),
            **problem_responses(401, 403, 422),
        },
        status_code=200,
        guards=[requires_admin],
    )
    async def put_task(
        self,
        request: Request[Principal, Any, Any],
        code: TaskCode,
        data: JSONBody[TaskIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Task]:
        created, task = await service.put_task(db, request.user.tenant_id, code, data)
        return Response(task, status_code=201 if created else 200)

    @get(
        "/tasks",
        operation_id="listTasks",
        summary="The tasks, active or not, by code",
        responses=problem_responses(401, 403),
    )
    async def list_tasks(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Task]:
        return await service.list_tasks(db, request.user.tenant_id, limit, cursor)

    @post(
        "/members/{member_id:str}/task-completions",
        operation_id="completeTask",
        summary="Record a completed task and award its points",
        description="The period and streak day are those of `occurred_at` in the tenant's time zone (at most "
        "5 minutes ahead of our clock, else 422 `invalid-timestamp`). The completion takes the next free slot "
        "1..`limit_per_period` of the period; none left: 409 `task-limit-reached`. Another completion less "
        "than `cooldown_seconds` away: 409 `task-cooldown`. Unknown task 404 `task-not-found`, inactive 409 "
        "`task-inactive`, unknown member 404 `member-not-found`. Points × multiplier plus any streak bonus "
        "become available at once (one lot expiring by the programme's policy from `occurred_at`), count "
        "as qualifying points and may raise the tier; `points.earned` is emitted. Idempotent by "
        "`completion_id`: a retry returns the first answer, refusals included; nothing is written on a refusal.",
        responses={
            201: ResponseSpec(TaskCompletion, description="Awarded", generate_examples=False),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def complete_task(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[TaskCompletionIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, TaskCompletion]:
            return 201, await service.complete_task(db, tenant_id, member_id, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="task-completions",
            key=data.completion_id,
            body=[member_id, data],  # the member is part of the request: another member is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/members/{member_id:str}/tasks",
        operation_id="listMemberTasks",
        summary="A member's progress on each active task, by code",
        description="This period's completions against the limit, whether the task can be completed now and "
        "else from when (cooldown end or next period), the points one completion earns this member now, and "
        "the current streak (0 once a day was missed or the reset boundary passed) with the next bonus.",
        responses=problem_responses(401, 403, 404),
    )
    async def list_member_tasks(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[TaskProgress]:
        return await service.list_progress(db, request.user.tenant_id, member_id, limit, cursor)
