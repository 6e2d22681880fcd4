"""HTTP glue shared by both services: problem responses, their OpenAPI entries, idempotent replies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Operation

from shared.errors import PROBLEM_MEDIA_TYPE, DomainError, Problem, problem_from_database_error
from shared.idempotency import Outcome
from shared.observability import request_id_of

__all__ = [
    "EXCEPTION_HANDLERS",
    "PublicOperation",
    "content_etag",
    "http_problem",
    "outcome_response",
    "problem_responses",
    "strict_body",
]

_log = structlog.get_logger("http")


def content_etag(value: Any, *, weak: bool = False) -> str:
    """An ETag that changes whenever the resource's JSON does. Weak (`W/`) for a view assembled from
    several reads, which two equal ETags promise to be equivalent, not byte-identical."""
    tag = '"' + hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:32] + '"'
    return "W/" + tag if weak else tag


# Stable types for the framework's own refusals.
_HTTP_TYPES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    503: "unavailable",
}

_DESCRIPTIONS = {
    400: "Malformed request: wrong types, unknown values, out-of-range numbers, bad cursor",
    401: "Missing, malformed, unknown or revoked credentials",
    403: "The key lacks the scope this operation needs",
    404: "No such resource for this tenant",
    409: "Refused by a business rule or an idempotency conflict; nothing was written",
    412: "If-Match did not match the current ETag",
    422: "Well-formed but refused by a rule; nothing was written",
    500: "A fault of ours; nothing was written",
    503: "The database is unreachable (`unavailable`) or did not answer in time (`timeout`), or a transient "
    "shortage (`invite-codes-exhausted`); nothing was written; retry",
}


def problem_responses(*statuses: int, database: bool = True) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems an operation can return: always 400 and 500, and 503 for every
    operation that uses the database (unreachable, or past `statement_timeout`)."""
    codes = sorted({400, 500, *statuses, *((503,) if database else ())})
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_DESCRIPTIONS.get(code, HTTPStatus(code).phrase),
            generate_examples=False,
        )
        for code in codes
    }


@dataclass
class PublicOperation(Operation):
    """The OpenAPI entry of a route that needs no credentials (opt `public`): `security: []` lifts the
    document-wide bearer requirement, so clients and contract tests do not expect a 401."""

    def __post_init__(self) -> None:
        self.security = []


def _problem(
    request: Request[Any, Any, Any], problem: Problem, headers: dict[str, str] | None = None
) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    return _problem(request, exc.problem(request.url.path))


def http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """The problem+json answer to a framework refusal (401, 403, 404, 405, 413...)."""
    status = exc.status_code
    errors = None
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        errors = [{k: str(v) for k, v in e.items()} for e in exc.extra if isinstance(e, dict)]
    problem = Problem(
        type=_HTTP_TYPES.get(status, "http-" + str(status)),
        title=HTTPStatus(status).phrase,
        status=status,
        detail=exc.detail,
        instance=request.url.path,
        errors=errors or None,
    )
    headers = dict(exc.headers) if exc.headers else {}
    if "route_handler" not in request.scope:  # refused by the router: no route middleware gave it an id
        headers["X-Request-ID"] = request_id_of(request.scope)
    return _problem(request, problem, headers or None)


def _on_database_error(request: Request[Any, Any, Any], exc: asyncpg.PostgresError) -> Response[Problem]:
    refusal = problem_from_database_error(exc)
    if refusal is None:
        return _on_unexpected(request, exc)
    return _problem(request, refusal.problem(request.url.path))


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.error("unhandled", exc_info=exc, path=request.url.path)
    problem = Problem(
        type="internal-error",
        title="Internal Server Error",
        status=500,
        detail="an unexpected error; nothing was written",
    )
    return _problem(request, problem)


def _on_exception_group(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    inner = getattr(exc, "exceptions", ())
    if len(inner) == 1:
        return _dispatch(request, inner[0])
    return _on_unexpected(request, exc)


def _dispatch(request: Request[Any, Any, Any], exc: BaseException) -> Response[Problem]:
    if isinstance(exc, DomainError):
        return _on_domain_error(request, exc)
    if isinstance(exc, HTTPException):
        return http_problem(request, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return _on_database_error(request, exc)
    if isinstance(exc, OSError | asyncpg.InterfaceError):
        return _problem(
            request,
            Problem(
                type="unavailable", title="Service Unavailable", status=503, detail="the database is unreachable; retry"
            ),
        )
    return _on_unexpected(request, exc if isinstance(exc, Exception) else Exception(repr(exc)))


def _on_any(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, BaseExceptionGroup):
        return _on_exception_group(request, exc)
    return _dispatch(request, exc)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: _on_domain_error,
    HTTPException: http_problem,
    asyncpg.PostgresError: _on_database_error,
    Exception: _on_any,
}


def outcome_response(outcome: Outcome) -> Response[bytes]:
    """The stored or fresh result of an idempotent write, with a header that says which."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return Response(outcome.body, status_code=outcome.status, media_type=outcome.media_type, headers=headers)


def _integral_floats_as_ints(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; msgspec's strict mode does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


def _convert_strict(raw: Any, target: type[msgspec.Struct]) -> None:
    """Most bodies pass as they are; only one that does not pays for the walk over integral floats."""
    try:
        msgspec.convert(raw, target, strict=True)
    except msgspec.ValidationError:
        msgspec.convert(_integral_floats_as_ints(raw), target, strict=True)


def _known_query(request: Request[Any, Any, Any]) -> frozenset[str]:
    """The query parameters the operation declares (its own and its dependencies'), computed once and
    kept on the handler itself (an id()-keyed cache could be hit by a later app's handler)."""
    handler = request.route_handler
    known: frozenset[str] | None = handler.opt.get("_known_query")
    if known is None:
        model = handler.create_kwargs_model(path_parameters=dict.fromkeys(request.path_params))  # type: ignore[arg-type]
        known = frozenset(param.field_alias for param in model.expected_query_params)
        handler.opt["_known_query"] = known
    return known


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """`before_request`: refuse nameless and undeclared query parameters; check a Struct body in msgspec's strict mode.

    Litestar converts bodies leniently (0 or "true" for a bool, "5" for an int); the contract says what
    a field's JSON type is, so anything else is a 400 like every other schema violation.
    """
    if "" in request.query_params:
        raise ValidationException(detail="a query parameter has no name")
    unknown = set(request.query_params) - _known_query(request)
    if unknown:  # a misspelt `limt=` or `form=` must not silently fall back to the default
        raise ValidationException(detail=f"unknown query parameters: {', '.join(sorted(unknown))[:200]}")
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    target = getattr(field, "annotation", None)
    if not (isinstance(target, type) and issubclass(target, msgspec.Struct)):
        return
    if not await request.body():
        raise ValidationException(detail="the body is not valid JSON")
    try:
        # Litestar's own decode, cached on the request: the handler's `data` reuses it (one parse, not two).
        raw = await request.json()
    except SerializationException:
        raise ValidationException(detail="the body is not valid JSON") from None
    try:
        _convert_strict(raw, target)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=f"Validation failed for {request.method} {request.url.path}: {exc}") from None
