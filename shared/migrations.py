"""Alembic per service: own schema, own version table, raw SQL, serialised by an advisory lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import Connection, NullPool
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

__all__ = ["alembic_config", "downgrade", "execute_script", "run_env", "upgrade"]


def alembic_config(migrations_dir: Path, dsn: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["dsn"] = dsn
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(migrations_dir: Path, dsn: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, dsn, schema), revision)


def downgrade(migrations_dir: Path, dsn: str, schema: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, dsn, schema), revision)


def execute_script(sql: str) -> None:
    """Run a multi-statement script on the raw asyncpg connection (SQLAlchemy's would split nothing)."""
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))


def _migrate(connection: Connection, schema: str) -> None:
    context.configure(
        connection=connection,
        version_table="alembic_version",
        version_table_schema=schema,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        # One migrator per schema at a time, released at COMMIT; then the schema may be created.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('migrate:{schema}'))")
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        context.run_migrations()


async def _run(dsn: str, schema: str) -> None:
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn), poolclass=NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, schema)
            await connection.commit()
    finally:
        await engine.dispose()


def run_env() -> None:
    """The body of every service's migrations/env.py (online mode only: we always run raw SQL live)."""
    cfg = context.config
    asyncio.run(_run(cfg.attributes["dsn"], cfg.attributes["schema"]))
