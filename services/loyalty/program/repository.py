"""SQL of the programme configuration."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["fetch_program", "store_program"]

_FETCH = "SELECT config, version, updated_at FROM programs WHERE tenant_id = $1"

# A write that changes nothing keeps the version (so the ETag of an unchanged programme is stable).
_STORE = """
INSERT INTO programs AS p (tenant_id, config) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE
   SET config = EXCLUDED.config, version = p.version + 1, updated_at = now()
 WHERE p.config IS DISTINCT FROM EXCLUDED.config
RETURNING config, version, updated_at
"""


async def fetch_program(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id)


async def store_program(conn: asyncpg.Connection, tenant_id: str, config: dict[str, Any]) -> asyncpg.Record | None:
    return await conn.fetchrow(_STORE, tenant_id, config)
