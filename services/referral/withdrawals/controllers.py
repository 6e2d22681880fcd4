"""POST/GET /v1/members/{member_id}/withdrawals (client); /v1/withdrawals/{withdrawal_id} and its
transitions approve, reject, complete, fail (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.referral.withdrawals import service
from services.referral.withdrawals.schemas import (
    ID_PATTERN,
    ApproveIn,
    CompleteIn,
    FailIn,
    RejectIn,
    Withdrawal,
    WithdrawalIn,
    WithdrawalStatus,
)
from shared.auth import Principal, requires_admin
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import Page

__all__ = ["WithdrawalController"]

MemberId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
WithdrawalId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]

_TRANSITION_RESPONSES = problem_responses(401, 403, 404, 409)


def _transition_response(view: Withdrawal, changed: bool) -> Response[Withdrawal]:
    return Response(view, headers=None if changed else {"Idempotent-Replayed": "true"})


class WithdrawalController(Controller):
    path = "/v1"
    tags = ["withdrawals"]

    @post(
        "/members/{member_id:str}/withdrawals",
        operation_id="requestWithdrawal",
        summary="Request a withdrawal of available commission",
        description="Moves `amount` from available to withdrawing; `fee` = floor(amount × withdrawal_fee_bps "
        "/ 10000) is kept on completion. Refused: below the programme's minimum (422 `below-minimum`), open "
        "commission debt (409 `open-debt`), more than available (409 `insufficient-balance`). Up to the "
        "auto-approve limit the withdrawal starts `approved`, above it `requested`. Idempotent by "
        "`withdrawal_id`: a retry returns the first answer, refusals included.",
        responses={
            201: ResponseSpec(Withdrawal, description="Requested (or approved at once)"),
            **problem_responses(401, 403, 404, 409, 422),
        },
        status_code=201,
    )
    async def request_withdrawal(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        data: JSONBody[WithdrawalIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id

        async def run() -> tuple[int, Withdrawal]:
            return 201, await service.request_withdrawal(db, tenant_id, member_id, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="withdrawals",
            key=data.withdrawal_id,
            body=[member_id, data],  # the member is part of the request: another member is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/members/{member_id:str}/withdrawals",
        operation_id="listMemberWithdrawals",
        summary="A member's withdrawals, newest first",
        responses=problem_responses(401, 403, 404),
    )
    async def list_withdrawals(
        self,
        request: Request[Principal, Any, Any],
        member_id: MemberId,
        db: NamedDependency[asyncpg.Connection],
        status: Annotated[WithdrawalStatus | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Withdrawal]:
        return await service.list_withdrawals(
            db, request.user.tenant_id, member_id, status=status, limit=limit, cursor=cursor
        )

    @get(
        "/withdrawals/{withdrawal_id:str}",
        operation_id="getWithdrawal",
        summary="Read a withdrawal",
        responses=problem_responses(401, 403, 404),
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        withdrawal_id: WithdrawalId,
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Withdrawal]:
        view = await service.get_withdrawal(db, request.user.tenant_id, withdrawal_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/withdrawals/{withdrawal_id:str}/approve",
        operation_id="approveWithdrawal",
        summary="Approve a requested withdrawal (no money moves)",
        description="requested → approved. Repeating it is a no-op (200, `Idempotent-Replayed: true`); "
        "from any other state 409 `invalid-transition`.",
        responses=_TRANSITION_RESPONSES,
        guards=[requires_admin],
        status_code=200,
    )
    async def approve(
        self,
        request: Request[Principal, Any, Any],
        withdrawal_id: WithdrawalId,
        data: JSONBody[ApproveIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Withdrawal]:
        return _transition_response(*await service.transition(db, request.user.tenant_id, withdrawal_id, "approve"))

    @post(
        "/withdrawals/{withdrawal_id:str}/reject",
        operation_id="rejectWithdrawal",
        summary="Reject a withdrawal: the amount goes back to available",
        description="requested | approved → rejected. Repeating it with the same reason is a no-op (200); "
        "anything else 409 `invalid-transition`.",
        responses=_TRANSITION_RESPONSES,
        guards=[requires_admin],
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Principal, Any, Any],
        withdrawal_id: WithdrawalId,
        data: JSONBody[RejectIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Withdrawal]:
        return _transition_response(
            *await service.transition(db, request.user.tenant_id, withdrawal_id, "reject", reason=data.reason)
        )

    @post(
        "/withdrawals/{withdrawal_id:str}/complete",
        operation_id="completeWithdrawal",
        summary="Record the payout: amount − fee paid out, the fee kept",
        description="approved → completed. A duplicate payout callback (same `payout_ref`) is a no-op (200); "
        "anything else 409 `invalid-transition`.",
        responses=_TRANSITION_RESPONSES,
        guards=[requires_admin],
        status_code=200,
    )
    async def complete(
        self,
        request: Request[Principal, Any, Any],
        withdrawal_id: WithdrawalId,
        data: JSONBody[CompleteIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Withdrawal]:
        return _transition_response(
            *await service.transition(db, request.user.tenant_id, withdrawal_id, "complete", payout_ref=data.payout_ref)
        )

    @post(
        "/withdrawals/{withdrawal_id:str}/fail",
        operation_id="failWithdrawal",
        summary="Record a failed payout: the amount goes back to available",
        description="approved → failed. Repeating it with the same reason is a no-op (200); anything else "
        "409 `invalid-transition`.",
        responses=_TRANSITION_RESPONSES,
        guards=[requires_admin],
        status_code=200,
    )
    async def fail(
        self,
        request: Request[Principal, Any, Any],
        withdrawal_id: WithdrawalId,
        data: JSONBody[FailIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Withdrawal]:
        return _transition_response(
            *await service.transition(db, request.user.tenant_id, withdrawal_id, "fail", reason=data.reason)
        )
