"""GET and PUT /v1/program (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody

from services.loyalty.program.schemas import Program, ProgramConfig
from services.loyalty.program.service import etag, put_program, read_program
from shared.auth import Principal, requires_admin
from shared.http import problem_responses

__all__ = ["ProgramController"]


class ProgramController(Controller):
    path = "/v1/program"
    tags = ["program"]
    guards = [requires_admin]

    @get(
        "/",
        operation_id="getProgram",
        summary="The loyalty programme (defaults until configured); ETag names its version",
        responses=problem_responses(401, 403),
    )
    async def read(
        self, request: Request[Principal, Any, Any], db: NamedDependency[asyncpg.Connection]
    ) -> Response[Program]:
        program = await read_program(db, request.user.tenant_id)
        return Response(program, headers={"ETag": etag(program.version)})

    @put(
        "/",
        operation_id="putProgram",
        summary="Replace the loyalty programme",
        description="Absent fields take the defaults (1 point per 100 fen, 7 pending days, expiry at the end "
        "of the month 12 months after earning, tier window the last 365 days, `one_down` after 30 grace "
        "days, clawback shortfalls as `debt`, up to 100 % of an order in points at 100 points = 100 fen, "
        "reminders 30 days ahead). A policy's `n` must suit its kind (422 `invalid-policy`). A change "
        "applies to later earnings only. `If-Match` with the current ETag guards against lost updates "
        "(412 otherwise).",
        responses=problem_responses(401, 403, 412, 422),
    )
    async def replace(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[ProgramConfig],
        db: NamedDependency[asyncpg.Connection],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match", max_length=200)] = None,
    ) -> Response[Program]:
        program = await put_program(db, request.user.tenant_id, data, if_match)
        return Response(program, headers={"ETag": etag(program.version)})
