"""Each service's migrations: upgrade, downgrade to nothing, upgrade again, with its own version table."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
from alembic.script import ScriptDirectory

from ops.cli import SERVICES, migrate
from services.loyalty.app import MIGRATIONS as LOYALTY_MIGRATIONS
from services.referral.app import MIGRATIONS as REFERRAL_MIGRATIONS

HEADS = {
    service: [ScriptDirectory(str(path)).get_current_head()]
    for service, path in (("loyalty", LOYALTY_MIGRATIONS), ("referral", REFERRAL_MIGRATIONS))
}


async def _tables(url: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def _version(url: str, schema: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(f"SELECT version_num FROM {schema}.alembic_version")]
    finally:
        await conn.close()


def test_upgrade_downgrade_upgrade(fresh_database) -> None:
    url = fresh_database()
    kernel = {"tenants", "api_keys", "idempotency_keys", "accounts", "entries", "postings", "alembic_version"}
    migrate(url)
    for schema in SERVICES:
        assert kernel <= asyncio.run(_tables(url, schema))
        assert asyncio.run(_version(url, schema)) == HEADS[schema]
    migrate(url, down=True, revision="base")
    for schema in SERVICES:
        assert asyncio.run(_tables(url, schema)) == {"alembic_version"}
        assert asyncio.run(_version(url, schema)) == []
    migrate(url)
    migrate(url)  # a second upgrade is a no-op
    for schema in SERVICES:
        assert kernel <= asyncio.run(_tables(url, schema))


def test_concurrent_migrations_serialise(fresh_database) -> None:
    """Three replicas starting at once: the advisory lock lets one migrate, the others find head."""
    url = fresh_database()
    env = {**os.environ, "DATABASE_URL": url}
    runs = [subprocess.Popen([sys.executable, "-m", "ops", "migrate"], env=env) for _ in range(3)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    for schema in SERVICES:
        assert asyncio.run(_version(url, schema)) == HEADS[schema]


async def _post_entry_settings(url: str, schema: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = $1 AND p.proname = 'post_entry'",
            schema,
        )
        return list(row["proconfig"] or [])
    finally:
        await conn.close()


def test_every_service_posts_entries_with_one_generic_plan(database_url) -> None:
    """Kernel revision 2 reached both schemas: a service missing it re-plans every ledger write."""
    for schema in SERVICES:
        assert asyncio.run(_post_entry_settings(database_url, schema)) == ["plan_cache_mode=force_generic_plan"]
