"""Holds (client): POST under a member, GET one, capture, void."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter

from services.loyalty.holds import service
from services.loyalty.holds.schemas import ID_PATTERN, CaptureIn, Hold, HoldIn, VoidIn
from shared.auth import Principal
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent

__all__ = ["HoldController"]

MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
HoldId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]


def _transition_response(view: Hold, changed: bool) -> Response[Hold]:
    return Response(view, headers=None if changed else {"Idempotent-Replayed": "true"})


class HoldController(Controller):
    path = "/v1"
    tags = ["holds"]

    @post(
        "/members/{member_id:str}/holds",
        operation_id="placeHold",
        summary="Reserve points for a checkout",
        description="Moves `points` from available to held, first-expiring lots first, until "
        "`expires_in_seconds` from now (default 900). 409 `insufficient-points` with nothing written. No "
        "share-of-order limit is applied: the request carries no order amount. Idempotent by `hold_id`: "
        "a retry returns the first answer, refusals included.",
        responses={
            201: ResponseSpec(Hold, description="Held"),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def place(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[HoldIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, Hold]:
            return 201, await service.place_hold(db, tenant_id, member_id, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="holds",
            key=data.hold_id,
            body=[member_id, data],  # the member is part of the request: another member is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/holds/{hold_id:str}",
        operation_id="getHold",
        summary="Read a hold",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], hold_id: HoldId, db: NamedDependency[asyncpg.Connection]
    ) -> Response[Hold]:
        view = await service.get_hold(db, request.user.tenant_id, hold_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/holds/{hold_id:str}/capture",
        operation_id="captureHold",
        summary="Spend held points (at most what is held); the rest goes back to available",
        description="held → captured. The points not captured go back to the lots they came from, "
        "latest-expiring first, so the first-expiring points are the ones spent. The same capture again is "
        "a no-op (200, `Idempotent-Replayed: true`). Refused: more than held (422 `capture-exceeds-hold`), "
        "past `expires_at` or expired (409 `hold-expired`), otherwise resolved (409 `hold-resolved`).",
        responses=problem_responses(401, 403, 404, 409, 422),
        status_code=200,
    )
    async def capture(
        self,
        request: Request[Principal, Any, Any],
        hold_id: HoldId,
        data: JSONBody[CaptureIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Hold]:
        return _transition_response(*await service.capture_hold(db, request.user.tenant_id, hold_id, data.points))

    @post(
        "/holds/{hold_id:str}/void",
        operation_id="voidHold",
        summary="Release a hold: all its points go back to available",
        description="held → voided (also past `expires_at` if the expiry job has not run yet). Voiding a "
        "voided or expired hold is a no-op (200, `Idempotent-Replayed: true`); a captured hold is 409 "
        "`hold-resolved`.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def void(
        self,
        request: Request[Principal, Any, Any],
        hold_id: HoldId,
        data: JSONBody[VoidIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Hold]:
        return _transition_response(*await service.void_hold(db, request.user.tenant_id, hold_id))
