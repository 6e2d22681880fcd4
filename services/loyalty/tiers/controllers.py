"""GET /v1/tiers (client), PUT /v1/tiers/{code} (admin) and GET /v1/members/{member_id}/tier-history."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.tiers import service
from services.loyalty.tiers.schemas import CODE_PATTERN, Tier, TierHistoryEntry, TierIn
from shared.auth import Principal, requires_admin
from shared.http import problem_responses
from shared.pagination import Page

__all__ = ["TierController", "TierHistoryController"]

TierCode = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]
MemberId = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]


class TierController(Controller):
    path = "/v1/tiers"
    tags = ["tiers"]

    @put(
        "/{code:str}",
        operation_id="putTier",
        summary="Create or replace a tier",
        description="A new tenant has `normal` (rank 0, threshold 0), `premium` (1, 1000) and `elite` (2, "
        "5000), each earning 1× (10000 bps). Ranks are unique (422 `rank-taken`); thresholds in qualifying "
        "points rise strictly with rank and the lowest rank's is 0 (422 `invalid-threshold`). `benefits` "
        "is free-form JSON for the shop (422 `invalid-json` if it holds a NUL character or passes 16 KiB).",
        responses={
            201: ResponseSpec(Tier, description="Created", generate_examples=False),
            **problem_responses(401, 403, 422),
        },
        status_code=200,
        guards=[requires_admin],
    )
    async def put_tier(
        self,
        request: Request[Principal, Any, Any],
        code: TierCode,
        data: JSONBody[TierIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Tier]:
        created, tier = await service.put_tier(db, request.user.tenant_id, code, data)
        return Response(tier, status_code=201 if created else 200)

    @get(
        "/",
        operation_id="listTiers",
        summary="The tiers, by rank",
        responses=problem_responses(401),
    )
    async def list_tiers(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Page[Tier]:
        return await service.list_tiers(db, request.user.tenant_id, limit, cursor)


class TierHistoryController(Controller):
    path = "/v1/members"
    tags = ["tiers"]

    @get(
        "/{member_id:str}/tier-history",
        operation_id="listMemberTierHistory",
        summary="A member's tier changes, newest first",
        description="Every change of the earned tier (`source` `earned`: `upgrade` on earning, `downgrade` by "
        "the tier evaluation job after the grace days) and of the effective tier through a plan (`source` "
        "`plan`: `plan_started`, `plan_ended`), each as emitted in `member.tier_changed`.",
        responses=problem_responses(401, 404),
    )
    async def list_history(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Page[TierHistoryEntry]:
        return await service.list_tier_history(db, request.user.tenant_id, member_id, limit, cursor)
