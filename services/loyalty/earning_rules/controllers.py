"""PUT /v1/earning-rules/{code} (admin) and GET /v1/earning-rules (client)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.earning_rules import service
from services.loyalty.earning_rules.schemas import CODE_PATTERN, EarningRule, EarningRuleIn
from shared.auth import Principal, requires_admin
from shared.http import problem_responses
from shared.pagination import Page

__all__ = ["EarningRuleController"]

RuleCode = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]


class EarningRuleController(Controller):
    path = "/v1/earning-rules"
    tags = ["earning-rules"]

    @put(
        "/{code:str}",
        operation_id="putEarningRule",
        summary="Create or replace an earning rule",
        description="Bonus points on purchases. `condition` selects items by category or sku (either "
        "listed; both empty = every item). `multiplier` scales the matching items' base points by "
        "`multiplier_bps` (20000 = double; 0 = none for those items); `fixed_per_unit` adds `points_per_unit` "
        "× quantity. `cap_per_order` and `cap_per_member_day` (tenant-local day of `paid_at`) limit what the "
        "rule adds. The rule applies to orders paid in [`valid_from`, `valid_until`) while `active`. Fields "
        "that contradict the kind, or out-of-range numbers, are 422 `invalid-rule`; an empty window is 422 "
        "`invalid-window`. Rules apply to orders recorded after the change.",
        responses={
            201: ResponseSpec(EarningRule, description="Created", generate_examples=False),
            **problem_responses(401, 403, 422),
        },
        status_code=200,
        guards=[requires_admin],
    )
    async def put_rule(
        self,
        request: Request[Principal, Any, Any],
        code: RuleCode,
        data: JSONBody[EarningRuleIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[EarningRule]:
        created, rule = await service.put_rule(db, request.user.tenant_id, code, data)
        return Response(rule, status_code=201 if created else 200)

    @get(
        "/",
        operation_id="listEarningRules",
        summary="The earning rules, by code",
        responses=problem_responses(401),
    )
    async def list_rules(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Page[EarningRule]:
        return await service.list_rules(db, request.user.tenant_id, limit, cursor)
