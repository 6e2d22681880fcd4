"""PUT/GET /v1/plans (admin writes, client reads); subscriptions of members: purchase, list, read, cancel."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from services.loyalty.plans import service
from services.loyalty.plans.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    CancelIn,
    Plan,
    PlanIn,
    Subscription,
    SubscriptionIn,
    SubscriptionStarted,
)
from shared.auth import Principal, requires_admin
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = ["PlanController", "SubscriptionController"]

PlanCode = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]
MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
SubscriptionId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["plans"]

    @put(
        "/{code:str}",
        operation_id="putPlan",
        summary="Create or replace a paid plan",
        description="Duration `P1M`, `P3M`, `P1Y` (whole months in the tenant's zone, clamped to the month's "
        "end) or `lifetime`; `price` in fen; `tier_code` (optional) must be an existing tier (422 "
        "`unknown-tier`); `bonus_points` are credited on each purchase; a `trial` plan can be bought once "
        "per member; an inactive plan cannot be bought. Existing subscriptions keep the plan as bought. "
        "`If-Match` with the plan's ETag guards against lost updates (412).",
        responses={
            201: ResponseSpec(Plan, description="Created", generate_examples=False),
            **problem_responses(401, 403, 412, 422),
        },
        status_code=200,
        guards=[requires_admin],
    )
    async def put_plan(
        self,
        request: Request[Principal, Any, Any],
        code: PlanCode,
        data: JSONBody[PlanIn],
        db: NamedDependency[asyncpg.Connection],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match", max_length=200)] = None,
    ) -> Response[Plan]:
        created, plan = await service.put_plan(db, request.user.tenant_id, code, data, if_match)
        return Response(plan, status_code=201 if created else 200, headers={"ETag": content_etag(plan)})

    @get(
        "/",
        operation_id="listPlans",
        summary="The plans, by code",
        description="`active` filters sellable (true) or retired (false) plans.",
        responses=problem_responses(401),
    )
    async def list_plans(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        active: Annotated[bool | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Plan]:
        return await service.list_plans(db, request.user.tenant_id, active, limit, cursor)

    @get(
        "/{code:str}",
        operation_id="getPlan",
        summary="Read a plan",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], code: PlanCode, db: NamedDependency[asyncpg.Connection]
    ) -> Response[Plan]:
        plan = await service.get_plan(db, request.user.tenant_id, code)
        return Response(plan, headers={"ETag": content_etag(plan)})


class SubscriptionController(Controller):
    path = "/v1"
    tags = ["plans"]

    @post(
        "/members/{member_id:str}/subscriptions",
        operation_id="createSubscription",
        summary="Buy a plan: start or extend the member's membership",
        description="Starts at max(`paid_at`, the latest end of the member's active subscriptions granting "
        "the same tier; for a plan granting no tier, of the same plan): a renewal before the end extends "
        "it, one after a lapse starts at payment. A lifetime plan never ends; buying more of a tier the "
        "member holds for life is refused (409 `lifetime-active`). A trial plan once per member (409 "
        "`trial-used`). Bonus points are available at once; `plan.activated` is emitted, and "
        "`member.tier_changed` when the plan raises the effective tier. Refused: unknown member (404 "
        "`member-not-found`), unknown or retired plan (422 `unknown-plan`, `plan-inactive`), `paid_at` more "
        "than 5 minutes ahead (422 `invalid-timestamp`). Idempotent by `subscription_id`: a retry returns "
        "the first answer, refusals included.",
        responses={
            201: ResponseSpec(SubscriptionStarted, description="Started or extended", generate_examples=False),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def subscribe(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[SubscriptionIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, SubscriptionStarted]:
            return 201, await service.subscribe(db, tenant_id, member_id, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="subscriptions",
            key=data.subscription_id,
            body=[member_id, data],  # another member with the same id is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/members/{member_id:str}/subscriptions",
        operation_id="listMemberSubscriptions",
        summary="A member's subscriptions, newest purchase first",
        responses=problem_responses(401, 404),
    )
    async def list_subscriptions(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Subscription]:
        return await service.list_subscriptions(db, request.user.tenant_id, member_id, limit, cursor)

    @get(
        "/subscriptions/{subscription_id:str}",
        operation_id="getSubscription",
        summary="Read a subscription",
        responses=problem_responses(401, 404),
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        subscription_id: SubscriptionId,
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Subscription]:
        view = await service.get_subscription(db, request.user.tenant_id, subscription_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/subscriptions/{subscription_id:str}/cancel",
        operation_id="cancelSubscription",
        summary="Cancel a subscription now, with or without refund",
        description="Ends it now (a subscription not yet started keeps its dates; its status is enough). "
        "With `refund` the plan's bonus points are taken back: from available points, the shortfall as "
        "debt (or lost under the `cap` policy). The effective tier is recomputed (`member.tier_changed` if "
        "it falls); `plan.cancelled` is emitted. Subscriptions stacked after it keep their dates. The same "
        "cancellation again is a no-op (200, `Idempotent-Replayed: true`); a different `refund` is 409 "
        "`already-cancelled`, an expired subscription 409 `subscription-expired`.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Principal, Any, Any],
        subscription_id: SubscriptionId,
        data: JSONBody[CancelIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Subscription]:
        view, changed = await service.cancel_subscription(db, request.user.tenant_id, subscription_id, data.refund)
        return Response(view, headers=None if changed else {"Idempotent-Replayed": "true"})
