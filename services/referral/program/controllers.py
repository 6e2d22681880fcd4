"""GET and PUT /v1/program (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody

from services.referral.program.schemas import Program, ProgramConfig
from services.referral.program.service import etag, put_program, read_program
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
        summary="The commission programme (defaults until configured); ETag names its version",
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
        summary="Replace the commission programme",
        description="Depth 1–3 (more is refused: `depth-not-allowed`), one rate per level summing to at "
        "most 10000 bps. Orders snapshot the version they were paid under, so a change applies to later "
        "orders only. `If-Match` with the current ETag guards against lost updates (412 otherwise).",
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
