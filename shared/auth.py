"""API keys and the operator token (§3.1): who is calling, for which tenant, with which scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Literal

import asyncpg
import msgspec
import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

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


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("missing or malformed bearer credentials")
    return token.strip()


class KeyCache:
    """A short-lived, bounded cache of resolved keys: auth is on every request's path."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[bytes, tuple[float, Principal | None]] = {}

    def get(self, digest: bytes) -> tuple[bool, Principal | None]:
        hit = self._items.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, digest: bytes, principal: Principal | None) -> None:
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[digest] = (time.monotonic() + self.ttl, principal)


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Tenant keys everywhere except routes marked `operator` (operator token) or `public` (none)."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        # The API docs and the contract are public, like the committed openapi/*.json.
        super().__init__(app, exclude_from_auth_key="public", exclude=["^/docs"], **kwargs)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        settings = connection.app.state.settings
        if connection.route_handler.opt.get("operator"):
            expected = settings.operator_token
            if not expected:
                raise NotFoundException("operator endpoints are disabled: OPERATOR_TOKEN is not set")
            if not hmac.compare_digest(_bearer(connection).encode(), expected.encode()):
                raise NotAuthorizedException("operator token required")
            return AuthenticationResult(user=OPERATOR, auth=OPERATOR)
        digest = hash_api_key(_bearer(connection))
        cache: KeyCache = connection.app.state.key_cache  # one per app; the middleware exists per route
        found, principal = cache.get(digest)
        if not found:
            pool: asyncpg.Pool = connection.app.state.pool
            row = await pool.fetchrow(_FIND_KEY, digest)
            principal = (
                None
                if row is None
                else Principal(tenant_id=row["tenant_id"], key_id=row["key_id"], scopes=frozenset(row["scopes"]))
            )
            cache.put(digest, principal)
        if principal is None:
            raise NotAuthorizedException("unknown or revoked API key")
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
        return AuthenticationResult(user=principal, auth=principal)


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: the key must carry the `admin` scope."""
    if connection.scope.get("method") == "OPTIONS":
        # Litestar's generated OPTIONS answer (`Allow`) inherits the controller's guards, but the
        # middleware leaves OPTIONS unauthenticated: it reveals nothing the contract does not.
        return
    principal: Principal = connection.auth
    if "admin" not in principal.scopes:
        raise PermissionDeniedException("this operation needs an admin key")
