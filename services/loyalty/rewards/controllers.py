"""Rewards: PUT (admin), GET one and list (client). Redemptions (client): POST and list under a member,
GET one, cancel."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.rewards import service
from services.loyalty.rewards.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    CancelIn,
    Redemption,
    RedemptionIn,
    Reward,
    RewardIn,
)
from shared.auth import Principal, requires_admin
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = ["RedemptionController", "RewardController"]

RewardCode = Annotated[str, PathParameter(pattern=CODE_PATTERN, min_length=1, max_length=64)]
MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
RedemptionId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]


class RewardController(Controller):
    path = "/v1/rewards"
    tags = ["rewards"]

    @put(
        "/{code:str}",
        operation_id="putReward",
        summary="Create or replace a reward",
        description="`stock` is absolute: the number of units left now (null = unlimited); redemptions take "
        "from it and cancellations give back, and a PUT overwrites whatever they left (422 `invalid-stock` "
        "below 0). `valid_from` / "
        "`valid_until` bound when it can be redeemed (422 `invalid-window` unless until > from); `min_tier` "
        "must be an existing tier (422 `tier-not-found`); `payload` is free-form JSON for the shop (422 "
        "`invalid-json` if it holds a NUL character or passes 16 KiB). 201 created, 200 replaced (an "
        "unchanged reward keeps its version).",
        responses={
            201: ResponseSpec(Reward, description="Created", generate_examples=False),
            **problem_responses(401, 403, 422),
        },
        status_code=200,
        guards=[requires_admin],
    )
    async def put_reward(
        self,
        request: Request[Principal, Any, Any],
        code: RewardCode,
        data: JSONBody[RewardIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Reward]:
        created, reward = await service.put_reward(db, request.user.tenant_id, code, data)
        return Response(reward, status_code=201 if created else 200)

    @get(
        "/",
        operation_id="listRewards",
        summary="The rewards, by code",
        responses=problem_responses(401),
    )
    async def list_rewards(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Reward]:
        return await service.list_rewards(db, request.user.tenant_id, limit, cursor)

    @get(
        "/{code:str}",
        operation_id="getReward",
        summary="Read a reward (its stock left included)",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], code: RewardCode, db: NamedDependency[asyncpg.Connection]
    ) -> Response[Reward]:
        reward = await service.get_reward(db, request.user.tenant_id, code)
        return Response(reward, headers={"ETag": content_etag(reward)})


class RedemptionController(Controller):
    path = "/v1"
    tags = ["redemptions"]

    @post(
        "/members/{member_id:str}/redemptions",
        operation_id="redeemReward",
        summary="Redeem a reward with points",
        description="Spends cost_points × quantity from available points, first-expiring lots first, and "
        "takes the quantity from the reward's stock. Refused with nothing written: unknown member or reward "
        "(404 `member-not-found`, `reward-not-found`), reward inactive (409 `reward-inactive`) or outside "
        "its validity window (409 `reward-not-valid`), effective tier below `min_tier` (409 `tier-too-low`), "
        "the member's completed redemptions of it plus this quantity above `per_member_limit` (409 "
        "`limit-reached`), not enough stock (409 `out-of-stock`) or points (409 `insufficient-points`). "
        "Idempotent by `redemption_id`: a retry returns the first answer, refusals included.",
        responses={
            201: ResponseSpec(Redemption, description="Redeemed"),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def redeem(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[RedemptionIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, Redemption]:
            return 201, await service.redeem(db, tenant_id, member_id, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="redemptions",
            key=data.redemption_id,
            body=[member_id, data],  # the member is part of the request: another member is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/members/{member_id:str}/redemptions",
        operation_id="listMemberRedemptions",
        summary="A member's redemptions, newest first",
        responses=problem_responses(401, 404),
    )
    async def list_redemptions(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Redemption]:
        return await service.list_redemptions(db, request.user.tenant_id, member_id, limit, cursor)

    @get(
        "/redemptions/{redemption_id:str}",
        operation_id="getRedemption",
        summary="Read a redemption",
        responses=problem_responses(401, 404),
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        redemption_id: RedemptionId,
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Redemption]:
        view = await service.get_redemption(db, request.user.tenant_id, redemption_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/redemptions/{redemption_id:str}/cancel",
        operation_id="cancelRedemption",
        summary="Cancel a redemption: points back to the lots they came from, stock back",
        description="Restores exactly the lots the redemption consumed, with their original expiry (a lot "
        "that expired meanwhile is expired again by the next sweep), in one entry, and gives the quantity "
        "back to a limited stock. Cancelling again is a no-op (200, `Idempotent-Replayed: true`). The "
        "client scope may cancel, so a shop can undo a redemption it failed to fulfil.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Principal, Any, Any],
        redemption_id: RedemptionId,
        data: JSONBody[CancelIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Redemption]:
        view, changed = await service.cancel_redemption(db, request.user.tenant_id, redemption_id)
        return Response(view, headers=None if changed else {"Idempotent-Replayed": "true"})
