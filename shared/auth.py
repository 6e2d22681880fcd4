"""API keys and the operator token (§3.1): who is calling, for which tenant, with which scopes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg
import msgspec
import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Receive, Send
from litestar.types import Scope as ASGIScope

from shared.http import http_problem

__all__ = [
    "OPERATOR",
    "AuthMiddleware",
    "KeyCache",
    "Principal",
    "Scope",
    "generate_api_key",
    "hash_api_key",
    "requires_admin",
]

Scope = Literal["admin", "client"]

_FIND_KEY = """
SELECT k.tenant_id, k.key_id, k.scopes
  FROM api_keys k
 WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    key_id: str
    scopes: frozenset[str]


OPERATOR = Principal(tenant_id="", key_id="operator", scopes=frozenset({"operator"}))


def generate_api_key() -> str:
    return "ak_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    # Keys are 256-bit random: a fast hash is enough; a slow KDF would only slow every request.
    return hashlib.sha256(key.encode()).digest()


def _bearer_value(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("missing or malformed bearer credentials")
    return token.strip()


def _raw_bearer(scope: ASGIScope) -> str:
    """The bearer token from the raw ASGI headers (the first `Authorization`, as `Headers.get` reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return _bearer_value(value.decode("latin-1"))
    raise NotAuthorizedException("missing or malformed bearer credentials")


Loader = Callable[[bytes], Awaitable["Principal | None"]]


class KeyCache:
    """A short-lived, bounded cache of resolved keys: auth is on every request's path.

    An entry is served for `ttl` seconds after it was read, never longer, so a revoked key stops
    working within `ttl`. In the last `refresh_ahead` of that, a hit starts one background re-read,
    so a key in steady use never misses; and the lookups of one key are single-flight: concurrent
    requests that miss together wait for one query instead of each sending its own."""

    def __init__(self, ttl: float, max_entries: int = 10_000, refresh_ahead: float | None = None) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.refresh_ahead = min(1.0, ttl / 5) if refresh_ahead is None else refresh_ahead
        self._items: dict[bytes, tuple[float, Principal | None]] = {}
        self._pending: dict[bytes, asyncio.Task[Principal | None]] = {}

    def put(self, digest: bytes, principal: Principal | None, read_at: float | None = None) -> None:
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[digest] = ((time.monotonic() if read_at is None else read_at) + self.ttl, principal)

    async def resolve(self, digest: bytes, load: Loader) -> Principal | None:
        """The principal of a key digest (None: unknown or revoked), from the cache or `load`."""
        hit = self._items.get(digest)
        if hit is not None:
            expires, principal = hit
            left = expires - time.monotonic()
            if left >= 0:
                if left < self.refresh_ahead and digest not in self._pending:
                    self._load(digest, load)  # in the background; this request is served now
                return principal
        pending = self._pending.get(digest)
        if pending is None:
            pending = self._load(digest, load)
        # shield: a caller that goes away (client gone) does not cancel the others' lookup
        return await asyncio.shield(pending)

    def _load(self, digest: bytes, load: Loader) -> asyncio.Task[Principal | None]:
        async def read() -> Principal | None:
            read_at = time.monotonic()  # the entry's age counts from before the query
            principal = await load(digest)
            self.put(digest, principal, read_at)
            return principal

        task = asyncio.ensure_future(read())
        self._pending[digest] = task
        task.add_done_callback(lambda done: self._settle(digest, done))
        return task

    def _settle(self, digest: bytes, task: asyncio.Task[Principal | None]) -> None:
        if self._pending.get(digest) is task:
            del self._pending[digest]
        if not task.cancelled():
            # Retrieved here, so a failed background refresh (nobody awaits it) does not warn: its entry
            # stays until it expires, then a request's own lookup raises, and is answered, as before.
            task.exception()


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Tenant keys everywhere except routes marked `operator` (operator token) or `public` (none).

    Plain ASGI on the hot path: the checks of `AbstractAuthenticationMiddleware` (scope type, `public`
    opt, OPTIONS, the `/docs` prefix) and the token read straight from `scope["headers"]`, with no
    `ASGIConnection` or `Headers` built per request."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        # The API docs and the contract are public, like the committed openapi/*.json.
        super().__init__(app, exclude_from_auth_key="public", exclude=["^/docs"], **kwargs)

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] in self.scopes and not self._bypass(scope):
            try:
                principal = await self._authenticate(scope)
            except HTTPException as refusal:
                # Answered here, inside the request-id and metrics middleware: raised, the refusal was
                # answered outside them (counted as a 200 taking no time, and without X-Request-ID).
                request: Request[Any, Any, Any] = Request(scope, receive)
                await http_problem(request, refusal).to_asgi_response(app=None, request=request)(scope, receive, send)
                return
            scope["user"] = principal
            scope["auth"] = principal
        await self.app(scope, receive, send)

    def _bypass(self, scope: ASGIScope) -> bool:
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get(self.exclude_opt_key):
            return True
        if scope.get("method") in self.exclude_http_methods:
            return True
        if self.exclude is None:
            return False
        # as Litestar's `should_bypass_for_path_pattern`
        path = scope["raw_path"].decode() if getattr(handler, "is_mount", False) else scope["path"]
        return self.exclude.search(path) is not None

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        principal = await self._authenticate(connection.scope)
        return AuthenticationResult(user=principal, auth=principal)

    async def _authenticate(self, scope: ASGIScope) -> Principal:
        app = scope["app"]
        if scope["route_handler"].opt.get("operator"):
            expected = app.state.settings.operator_token
            if not expected:
                raise NotFoundException("operator endpoints are disabled: OPERATOR_TOKEN is not set")
            if not hmac.compare_digest(_raw_bearer(scope).encode(), expected.encode()):
                raise NotAuthorizedException("operator token required")
            return OPERATOR
        digest = hash_api_key(_raw_bearer(scope))
        state = app.state
        cache: KeyCache = state.key_cache  # one per app; the middleware exists per route
        pool: asyncpg.Pool = state.pool

        async def load(key: bytes) -> Principal | None:
            row = await pool.fetchrow(_FIND_KEY, key)
            if row is None:
                return None
            return Principal(tenant_id=row["tenant_id"], key_id=row["key_id"], scopes=frozenset(row["scopes"]))

        principal = await cache.resolve(digest, load)
        if principal is None:
            raise NotAuthorizedException("unknown or revoked API key")
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
        return principal


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: the key must carry the `admin` scope."""
    if connection.scope.get("method") == "OPTIONS":
        # Litestar's generated OPTIONS answer (`Allow`) inherits the controller's guards, but the
        # middleware leaves OPTIONS unauthenticated: it reveals nothing the contract does not.
        return
    principal: Principal = connection.auth
    if "admin" not in principal.scopes:
        raise PermissionDeniedException("this operation needs an admin key")
