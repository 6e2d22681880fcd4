"""Tenants and their API keys (§3.1): schemas, SQL and rules, shared by both services."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from shared.auth import generate_api_key, hash_api_key
from shared.errors import DomainError

__all__ = [
    "ApiKeyIn",
    "IssuedKey",
    "Tenant",
    "TenantIn",
    "get_tenant",
    "issue_api_key",
    "upsert_tenant",
]

Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64)]
ScopeName = Literal["admin", "client"]


class TenantIn(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Asia/Shanghai"
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "CNY"


class Tenant(msgspec.Struct, kw_only=True):
    tenant_id: str
    name: str
    timezone: str
    currency: str
    created_at: datetime
    updated_at: datetime


class ApiKeyIn(msgspec.Struct, kw_only=True):
    key_id: Identifier
    scopes: Annotated[list[ScopeName], msgspec.Meta(min_length=1, max_length=2)]
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class IssuedKey(msgspec.Struct, kw_only=True):
    tenant_id: str
    key_id: str
    scopes: list[str]
    label: str | None
    created_at: datetime
    key: str | None  # shown once, on the request that created it; never stored


_UPSERT_TENANT = """
INSERT INTO tenants AS t (tenant_id, name, timezone, currency)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id) DO UPDATE
   SET name = EXCLUDED.name, timezone = EXCLUDED.timezone, currency = EXCLUDED.currency, updated_at = now()
 WHERE (t.name, t.timezone, t.currency) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.timezone, EXCLUDED.currency)
RETURNING tenant_id, name, timezone, currency, created_at, updated_at, (xmax = 0) AS created
"""

_GET_TENANT = "SELECT tenant_id, name, timezone, currency, created_at, updated_at FROM tenants WHERE tenant_id = $1"

_CURRENCY_IN_USE = """
SELECT EXISTS (SELECT 1 FROM accounts WHERE tenant_id = $1 AND asset <> 'PTS' AND asset <> $2)
"""

_INSERT_KEY = """
INSERT INTO api_keys (tenant_id, key_id, key_hash, scopes, label)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, key_id) DO NOTHING
RETURNING tenant_id, key_id, scopes, label, created_at
"""

_GET_KEY = "SELECT tenant_id, key_id, scopes, label, created_at FROM api_keys WHERE tenant_id = $1 AND key_id = $2"


async def get_tenant(conn: asyncpg.Connection, tenant_id: str) -> Tenant:
    row = await conn.fetchrow(_GET_TENANT, tenant_id)
    if row is None:
        raise DomainError("tenant-not-found", 404, f"tenant {tenant_id} does not exist")
    return Tenant(**dict(row))


async def upsert_tenant(conn: asyncpg.Connection, tenant_id: str, data: TenantIn) -> tuple[Tenant, bool]:
    """Create or update a tenant; returns it and whether it was created. Same body twice changes nothing."""
    try:
        zoneinfo.ZoneInfo(data.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DomainError("invalid-timezone", 422, f"{data.timezone!r} is not an IANA time zone") from None
    if await conn.fetchval(_CURRENCY_IN_USE, tenant_id, data.currency):
        raise DomainError("currency-locked", 409, "the tenant already holds money in another currency")
    row = await conn.fetchrow(_UPSERT_TENANT, tenant_id, data.name, data.timezone, data.currency)
    if row is None:  # nothing changed
        return await get_tenant(conn, tenant_id), False
    created = row["created"]
    return Tenant(**{k: row[k] for k in Tenant.__struct_fields__}), created


async def issue_api_key(
    conn: asyncpg.Connection, tenant_id: str, data: ApiKeyIn, key: str | None = None
) -> tuple[IssuedKey, bool]:
    """Issue a key under `key_id` (idempotent by key_id: a replay returns the metadata, not the secret)."""
    await get_tenant(conn, tenant_id)
    key = key or generate_api_key()
    scopes = sorted(set(data.scopes))
    row = await conn.fetchrow(_INSERT_KEY, tenant_id, data.key_id, hash_api_key(key), scopes, data.label)
    if row is not None:
        return IssuedKey(**dict(row), key=key), True
    existing = await conn.fetchrow(_GET_KEY, tenant_id, data.key_id)
    assert existing is not None
    if sorted(existing["scopes"]) != scopes or existing["label"] != data.label:
        raise DomainError("idempotency-conflict", 409, f"key {data.key_id} exists with other scopes or label")
    return IssuedKey(**dict(existing), key=None), False
