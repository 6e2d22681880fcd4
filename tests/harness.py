"""A service app (and optionally a pool) on an event loop of its own, so hypothesis can drive it from a
plain (synchronous) test function: hypothesis examples cannot be async tests themselves."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

import asyncpg
import httpx

from ops.cli import provision
from services.loyalty.app import create_app as create_loyalty_app
from services.referral.app import create_app as create_referral_app
from shared.db import create_pool
from shared.tenants import TenantIn
from tests.conftest import TenantKeys, serve, settings_for

__all__ = ["SyncHarness"]

_APPS = {"loyalty": create_loyalty_app, "referral": create_referral_app}


class SyncHarness:
    def __init__(self, service: Literal["loyalty", "referral"], database_url: str, *, pool: bool = False) -> None:
        self.database_url = database_url
        self.loop = asyncio.new_event_loop()
        settings = settings_for(service, database_url)
        self._serving = serve(_APPS[service](settings))
        self.client: httpx.AsyncClient = self.run(self._serving.__aenter__())
        self._pool: asyncpg.Pool | None = self.run(create_pool(settings, min_size=1, max_size=2)) if pool else None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "SyncHarness(..., pool=True) for a pool"
        return self._pool

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def __enter__(self) -> SyncHarness:
        return self

    def __exit__(self, *_: Any) -> None:
        if self._pool is not None:
            self.run(self._pool.close())
        self.run(self._serving.__aexit__(None, None, None))
        self.loop.close()

    async def tenant(self) -> TenantKeys:
        """A new tenant whose one key has both scopes (admin and client)."""
        tenant_id = "h" + uuid.uuid4().hex[:12]
        keys = await provision(self.database_url, tenant_id, TenantIn(name=tenant_id), {"admin": ["admin", "client"]})
        return TenantKeys(tenant_id, keys["admin"], keys["admin"])
