"""POST/GET /v1/members/{member_id}/adjustments (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.adjustments import service
from services.loyalty.adjustments.schemas import ID_PATTERN, Adjustment, AdjustmentIn, AdjustmentResult
from shared.auth import Principal, requires_admin
from shared.http import outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = ["AdjustmentController"]

MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]


class AdjustmentController(Controller):
    path = "/v1/members"
    tags = ["adjustments"]
    guards = [requires_admin]

    @post(
        "/{member_id:str}/adjustments",
        operation_id="adjustMemberPoints",
        summary="Credit or debit a member's available points (admin)",
        description="`points` > 0: `issued + / points −` (open debt repaid first) and a new lot expiring by "
        "the programme's policy from now. `points` < 0: taken from available points first-expiring first, "
        "`points + / issued −`; more than available is 409 `insufficient-points` (an adjustment never "
        "creates debt). 0 is 422 `invalid-amount`, a blank reason 422 `reason-required`. `qualifying: true` "
        "counts the points toward the tier (a credit may upgrade at once). The operator recorded is the "
        "admin key's id. Emits `points.adjusted`. Idempotent by `adjustment_id`: a retry returns the first "
        "answer, refusals included.",
        responses={
            201: ResponseSpec(AdjustmentResult, description="Adjusted", generate_examples=False),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def adjust(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[AdjustmentIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id, operator = request.user.tenant_id, request.user.key_id

        async def run() -> tuple[int, AdjustmentResult]:
            return 201, await service.adjust_points(db, tenant_id, member_id, data, operator)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="adjustments",
            key=data.adjustment_id,
            body=[member_id, data],  # the member is part of the request: another member is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/{member_id:str}/adjustments",
        operation_id="listMemberAdjustments",
        summary="A member's adjustments, newest first (admin)",
        responses=problem_responses(401, 403, 404),
    )
    async def list_adjustments(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Page[Adjustment]:
        return await service.list_adjustments(db, request.user.tenant_id, member_id, limit, cursor)
