"""The asyncpg pool and the per-request transaction (the request owns the transaction)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import asyncpg
from litestar.datastructures import State

from shared.settings import Settings

__all__ = ["create_pool", "provide_connection", "provide_transaction", "request_slots"]


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    # The default reset costs a round trip per request; no code here leaves session state behind
    # (advisory locks are transaction-scoped, no SET outside a transaction, no LISTEN on pooled conns).
    return None


async def create_pool(settings: Settings, *, min_size: int | None = None, max_size: int | None = None) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.pool_min_size if min_size is None else min_size,
        max_size=settings.pool_max_size if max_size is None else max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={
            "search_path": settings.schema,
            "application_name": settings.service,
            "statement_timeout": str(settings.statement_timeout_ms),
            "timezone": "UTC",
        },
    )
    assert pool is not None
    return pool


def request_slots(settings: Settings) -> asyncio.Semaphore:
    """Requests take a pool connection in arrival order. asyncpg's pool is not fair: a waiter woken for
    a returned connection can lose it to a newcomer and go back to the end of the line, so with a pool
    smaller than the requests in flight some wait many times over (docs/benchmarks.md). An asyncio
    semaphore of the pool's size queues them first-come, first-served."""
    return asyncio.Semaphore(settings.pool_max_size)


async def provide_transaction(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """One connection in one transaction for the whole request; committed before the response."""
    pool: asyncpg.Pool = state.pool
    async with state.request_slots, pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield conn
        except BaseException:
            await tx.rollback()
            raise
        else:
            await tx.commit()


async def provide_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """A connection without a transaction, for reads that stream or run several short transactions."""
    pool: asyncpg.Pool = state.pool
    async with state.request_slots, pool.acquire() as conn:
        yield conn
