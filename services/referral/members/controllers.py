"""Members and team (client), bindings (client), distributors and levels (admin), leaderboards (client),
and loyalty's signed events (public: the signature is the credential)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from services.referral.members import distributors, leaderboards, service
from services.referral.members.schemas import (
    ID_PATTERN,
    Binding,
    BindingIn,
    Distributor,
    DistributorIn,
    DistributorLevel,
    DistributorLevelIn,
    Leaderboard,
    LoyaltyEventResult,
    Member,
    MemberIn,
    Period,
    TeamMember,
)
from shared.auth import Principal, requires_admin
from shared.events.outbox import Event
from shared.http import PublicOperation, content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = [
    "BindingController",
    "DistributorController",
    "LeaderboardController",
    "LoyaltyEventController",
    "MemberController",
]

MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
LevelCode = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
MetricName = Annotated[str, PathParameter(pattern=r"^(invites|commission|team_sales)$", min_length=1, max_length=16)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]

_encode = msgspec.json.Encoder().encode


class MemberController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @put(
        "/{member_id:str}",
        operation_id="registerMember",
        summary="Register a member (idempotent by member id), optionally bound through an invite code",
        description="Gives the member a unique 8-character invite code (alphabet without 0/O/1/I) and opens "
        "their commission accounts. With `invite_code` the member is bound to that code's owner at "
        "`registered_at` under the programme's binding rules; a refused binding refuses the registration "
        "(same problem as POST /v1/bindings, nothing written). For an existing member nothing changes: "
        "200 with the member as stored (the original `registered_at` is kept; code, device and ip are "
        "ignored: bind with POST /v1/bindings).",
        responses={
            201: ResponseSpec(Member, description="Registered", generate_examples=False),
            **problem_responses(401, 409, 422),
        },
        status_code=200,
    )
    async def register(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[MemberIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Member]:
        created, member = await service.register_member(db, request.user.tenant_id, member_id, data)
        return Response(member, status_code=201 if created else 200)

    @get(
        "/{member_id:str}",
        operation_id="getMember",
        summary="A member: invite code, inviter and ancestors, distributor status, commission balances, team",
        description="`ancestors` are levels 1..3 up the invite tree; `team` counts invitees per level; "
        "balances are in minor units; `withdrawn` totals completed withdrawals. The weak ETag changes "
        "with any of it.",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], member_id: MemberId, conn: NamedDependency[asyncpg.Connection]
    ) -> Response[Member]:
        # `conn`, no BEGIN/COMMIT: under READ COMMITTED each statement reads its own snapshot either way.
        member = await service.get_member(conn, request.user.tenant_id, member_id)
        return Response(member, headers={"ETag": content_etag(member, weak=True)})

    @get(
        "/{member_id:str}/team",
        operation_id="listTeam",
        summary="A member's invitees at one level (1..3), by member id",
        description="`joined_at` is when the invitee bound to their current inviter. Keyset pages: "
        "one index range per page, however deep the page.",
        responses=problem_responses(401, 404),
    )
    async def team(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        conn: NamedDependency[asyncpg.Connection],
        level: Annotated[int, QueryParameter(ge=1, le=3)] = 1,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[TeamMember]:
        # A read of one statement (two for an empty page): no transaction, two round trips fewer.
        return await service.list_team(conn, request.user.tenant_id, member_id, level, limit, cursor)


class BindingController(Controller):
    path = "/v1/bindings"
    tags = ["members"]

    @post(
        "/",
        operation_id="createBinding",
        summary="Bind an invitee to an inviter (by invite code or member id)",
        description="Modes (programme `binding.mode`): `first_bind`: the first binding stands (another "
        "inviter is 409 `already-bound`); `register_window`: only within `register_window_seconds` of "
        "registration (422 `binding-window-closed`), then as `first_bind`; `override`: each binding "
        "replaces the last, for future orders only. After `lifetime_days` since the binding a new inviter "
        "may bind in any mode. Always refused: self-referral (422 `self-referral`), a cycle at any depth "
        "(422 `referral-cycle`), an inviter who is not an eligible distributor (422 "
        "`inviter-not-eligible`), more than `daily_cap_per_inviter` bindings to one inviter on one "
        "tenant-local day (422 `binding-cap-reached`). The same inviter again is 200 with the current "
        "binding. A device or ip equal to the inviter's is accepted but flagged (`referral.flagged`). "
        "`Idempotency-Key` makes a retry return the first answer, refusals included.",
        responses={
            200: ResponseSpec(
                Binding, description="Already bound to this inviter: nothing changed", generate_examples=False
            ),
            201: ResponseSpec(Binding, description="Bound", generate_examples=False),
            **problem_responses(401, 404, 409, 422),
        },
        status_code=201,
    )
    async def bind(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[BindingIn],
        db: NamedDependency[asyncpg.Connection],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, Binding]:
            changed, binding = await service.create_binding(db, tenant_id, data)
            return (201 if changed else 200), binding

        if idempotency_key is None:
            status, binding = await run()
            return Response(_encode(binding), status_code=status, media_type="application/json")
        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="bindings",
            key=idempotency_key,
            body=data,
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)


class DistributorController(Controller):
    path = "/v1"
    tags = ["distributors"]
    guards = [requires_admin]

    @put(
        "/distributor-levels/{code:str}",
        operation_id="putDistributorLevel",
        summary="Create or replace a distributor level",
        description="`rates_bps`: one rate per level (1 to 3), each 0..10000 (422 `invalid-rates`), "
        "summing to at most 10000 (422 `rates-exceed-total`).",
        responses={
            201: ResponseSpec(DistributorLevel, description="Created", generate_examples=False),
            **problem_responses(401, 403, 422),
        },
        status_code=200,
    )
    async def put_level(
        self,
        request: Request[Principal, Any, Any],
        code: LevelCode,
        data: JSONBody[DistributorLevelIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[DistributorLevel]:
        created, level = await distributors.put_level(db, request.user.tenant_id, code, data)
        return Response(level, status_code=201 if created else 200)

    @get(
        "/distributor-levels",
        operation_id="listDistributorLevels",
        summary="Distributor levels, by rank then code",
        responses=problem_responses(401, 403),
    )
    async def list_levels(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[DistributorLevel]:
        return await distributors.list_levels(db, request.user.tenant_id, limit, cursor)

    @put(
        "/distributors/{member_id:str}",
        operation_id="putDistributor",
        summary="Set a member's distributor status and level",
        description="`active` lets the member earn (and invite, under `approved` eligibility); `suspended` "
        "earns nothing on new orders while frozen commission still matures. `level_code` absent or null: "
        "no level; an unknown level is 422 `unknown-level`.",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def put_distributor(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[DistributorIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Distributor:
        return await distributors.put_distributor(db, request.user.tenant_id, member_id, data)


class LeaderboardController(Controller):
    path = "/v1/leaderboards"
    tags = ["members"]

    @get(
        "/{metric:str}",
        operation_id="listLeaderboard",
        summary="Rank members by invites, commission or team sales over a tenant-local period",
        description="`invites`: members currently bound to the inviter with `bound_at` in the period; "
        "`commission`: amount − reversed of commission items created in the period; `team_sales`: paid − "
        "refunded of orders paid in the period by the member's current team (levels 1..3). The period is "
        "the tenant-local day, ISO week (from Monday), month, or `all`, containing `as_of` (default now). "
        "Score descending, then member id.",
        responses=problem_responses(401, 422),
    )
    async def ranking(
        self,
        request: Request[Principal, Any, Any],
        metric: MetricName,
        db: NamedDependency[asyncpg.Connection],
        period: Annotated[Period, QueryParameter()] = "all",
        as_of: Annotated[
            str | None,
            QueryParameter(
                pattern=RFC3339,
                max_length=40,
                description="RFC 3339 time with offset; the period containing it (default now)",
            ),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Leaderboard:
        return await leaderboards.leaderboard(
            db,
            request.user.tenant_id,
            metric,  # type: ignore[arg-type]  # the path pattern admits only the three metrics
            period,
            as_of,
            limit,
            cursor,
        )


class LoyaltyEventController(Controller):
    path = "/v1/events"
    tags = ["events"]
    opt = {"public": True}

    @post(
        "/loyalty",
        operation_id="receiveLoyaltyEvent",
        summary="Receive a signed loyalty event (plan.activated activates a distributor)",
        description="No API key: the Standard Webhooks signature is the credential. Headers `webhook-id` "
        "(= the envelope's `event_id`), `webhook-timestamp` (Unix seconds, within 5 minutes) and "
        "`webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`, keyed with the tenant's "
        "programme `loyalty_events_secret`. Unknown tenant, no secret, a wrong or stale signature: 401 "
        "`invalid-signature`. `plan.activated` with `data.grants_distribution: true` registers "
        "`data.member_id` if unknown (at `occurred_at`) and makes it an active distributor (its level "
        "kept); other events are acknowledged and ignored. Idempotent by `event_id`: a redelivery "
        "returns the first answer.",
        responses={
            200: ResponseSpec(LoyaltyEventResult, description="Applied or ignored", generate_examples=False),
            **problem_responses(401, 409, 422),
        },
        status_code=200,
        operation_class=PublicOperation,
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Event],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        event = await distributors.authenticate_loyalty_event(db, request.headers, await request.body())

        async def run() -> tuple[int, LoyaltyEventResult]:
            return 200, await distributors.apply_loyalty_event(db, event)

        outcome = await run_idempotent(
            db,
            tenant_id=event.tenant_id,
            scope="loyalty-events",
            key=event.event_id,
            body=event,
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)
