"""Real PostgreSQL through real migrations: one fresh database per test process, tenants per test.

Tests never clean up by deleting: the journal is append-only. Each test works in its own tenant(s),
so tests cannot see each other's rows, exactly as tenants cannot in production.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from ops.cli import migrate, provision
from ops.database import embedded_server
from services.loyalty.app import create_app as create_loyalty_app
from services.referral.app import create_app as create_referral_app
from shared.settings import Settings, load_settings
from shared.tenants import TenantIn
from tests.shared.receiver import Receiver

OPERATOR_TOKEN = "test-operator-token"


def _admin_dsn() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return embedded_server("pg-test").get_uri()


def _with_database(dsn: str, database: str) -> str:
    """Swap the database name in a libpq URL (keeps host, socket and options)."""
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}{sep}{query}"


async def _create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        # Durability is not under test here; the benchmark runs with the server's defaults.
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await conn.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_blocking(coro: Any) -> Any:
    """Run a coroutine to completion from sync or async code alike (in a thread with its own loop)."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    return _admin_dsn()


@pytest.fixture(scope="session")
def fresh_database(admin_dsn: str) -> Iterator[Any]:
    """A factory of empty databases (no migrations), dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        run_blocking(_create_database(admin_dsn, name))
        created.append(name)
        return _with_database(admin_dsn, name)

    yield make
    for name in created:
        run_blocking(_drop_database(admin_dsn, name))


@pytest.fixture(scope="session")
def database_url(fresh_database: Any) -> str:
    """The session's database with both services migrated to head."""
    url = fresh_database()
    migrate(url)
    return url


def settings_for(service: str, url: str, **overrides: Any) -> Settings:
    env = {
        "OPERATOR_TOKEN": OPERATOR_TOKEN,
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
        "SCHEDULER_ENABLED": "false",
        # several workers share one server of 100 connections: small app pools leave room
        "DB_POOL_MAX_SIZE": "10",
    }
    settings = load_settings(service, url, env)
    return Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, **overrides})


@pytest.fixture(scope="session")
async def loyalty_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    from shared.db import create_pool

    pool = await create_pool(settings_for("loyalty", database_url), min_size=1, max_size=50)
    yield pool
    try:
        await asyncio.wait_for(pool.close(), 30)
    except TimeoutError:  # a failed test kept a connection: do not hang the session on it
        pool.terminate()


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan runs in a task of its own: it is entered and exited in the same task
    (anyio's rule), whichever task pytest tears the fixture down in."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold_lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    holder = asyncio.create_task(hold_lifespan())
    await asyncio.wait([holder, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if holder.done():
        holder.result()  # startup failed: raise its error here
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        stop.set()
        await holder


@pytest.fixture(scope="session")
async def loyalty_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_loyalty_app(settings_for("loyalty", database_url))) as client:
        yield client


@pytest.fixture(scope="session")
async def referral_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_referral_app(settings_for("referral", database_url))) as client:
        yield client


class TenantKeys:
    def __init__(self, tenant_id: str, admin: str, client: str) -> None:
        self.tenant_id = tenant_id
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.client = {"Authorization": f"Bearer {client}"}


@pytest.fixture
async def tenant(database_url: str) -> TenantKeys:
    """A new tenant on both services with an admin key and a client key."""
    tenant_id = "t" + uuid.uuid4().hex[:12]
    keys = await provision(
        database_url, tenant_id, TenantIn(name=tenant_id), {"admin": ["admin", "client"], "client": ["client"]}
    )
    assert keys["admin"] and keys["client"]
    return TenantKeys(tenant_id, keys["admin"], keys["client"])


OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook receiver on 127.0.0.1 (tests/shared/receiver.py)."""
    with Receiver() as running:
        yield running
