"""Members (client): upsert, the member view, the ledger history of their accounts."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.loyalty.members import service
from services.loyalty.members.schemas import ID_PATTERN, AccountName, Member, MemberIn, Transaction
from shared.auth import Principal
from shared.http import content_etag, problem_responses
from shared.pagination import Page

__all__ = ["MemberController"]

MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]

_encode = msgspec.json.Encoder().encode


class MemberController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @put(
        "/{member_id:str}",
        operation_id="putMember",
        summary="Create or update a member (profile attributes, joined_at)",
        description="201 for a new member (its point accounts are opened, `member.registered` emitted), "
        "200 for an existing one, whose attributes and `joined_at` are replaced. `attributes` is free-form "
        "JSON for the shop (422 `invalid-json` if it holds a NUL character or passes 16 KiB).",
        responses={
            201: ResponseSpec(Member, description="Created", generate_examples=False),
            **problem_responses(401, 422),
        },
        status_code=200,
    )
    async def put_member(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[MemberIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Member]:
        created, member = await service.put_member(db, request.user.tenant_id, member_id, data)
        return Response(member, status_code=201 if created else 200)

    @get(
        "/{member_id:str}",
        operation_id="getMember",
        summary="A member: effective tier and its source, balances, points expiring soon, qualifying points",
        description="`tier` is the higher of the earned tier and an active plan's (`source`, `until`). "
        "`balances` come from the ledger. `expiring` lists live lots expiring within 30 days (overdue "
        "ones not yet swept included), by expiry time. `qualifying` counts the points earned inside the "
        "programme's tier window and what the next tier above the earned one needs. Weak ETag.",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], member_id: MemberId, conn: NamedDependency[asyncpg.Connection]
    ) -> Response[Member]:
        # No transaction: two reads (see get_member), as in READ COMMITTED inside one.
        member = await service.get_member(conn, request.user.tenant_id, member_id)
        return Response(member, headers={"ETag": content_etag(member, weak=True)})

    @get(
        "/{member_id:str}/transactions",
        operation_id="listMemberTransactions",
        summary="A member's point history, newest first",
        description="The ledger lines of one of the member's accounts (`account`: `points` = available, "
        "default; `pending`, `held`, `debt`), each with the entry's kind, reason, source reference, the "
        "amount on the account's normal side and the balance after it.",
        responses=problem_responses(401, 404),
    )
    async def transactions(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        account: Annotated[AccountName, QueryParameter()] = "points",
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Page[Transaction]:
        return await service.list_transactions(db, request.user.tenant_id, member_id, account, limit, cursor)
