"""Settings, read from the environment once and passed into the app factory (nothing reads it at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

__all__ = ["Settings", "load_settings"]


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str
    service: str
    schema: str
    operator_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    pool_min_size: int = 2
    pool_max_size: int = 20
    statement_timeout_ms: int = 5000
    auth_cache_seconds: float = 10.0
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stdout is a terminal
    scheduler_enabled: bool = True
    scheduler_tick_seconds: float = 5.0
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 30.0  # doubled per attempt, capped at 6 hours
    webhook_timeout_seconds: float = 10.0


_DEFAULT_PORTS = {"loyalty": 8001, "referral": 8002}


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(service: str, database_url: str, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for one service; `database_url` comes from the caller (env or the embedded server)."""
    env = os.environ if env is None else env
    prefix = service.upper() + "_"
    return Settings(
        database_url=database_url,
        service=service,
        schema=service,
        operator_token=env.get("OPERATOR_TOKEN") or None,
        host=env.get("HOST", "127.0.0.1"),
        port=int(env.get(prefix + "PORT", _DEFAULT_PORTS.get(service, 8000))),
        pool_min_size=int(env.get("DB_POOL_MIN_SIZE", 2)),
        pool_max_size=int(env.get("DB_POOL_MAX_SIZE", 20)),
        statement_timeout_ms=int(env.get("DB_STATEMENT_TIMEOUT_MS", 5000)),
        auth_cache_seconds=float(env.get("AUTH_CACHE_SECONDS", 10)),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        log_json=_flag(env.get("LOG_JSON")),
        scheduler_enabled=_flag(env.get("SCHEDULER_ENABLED")) is not False,
        scheduler_tick_seconds=float(env.get("SCHEDULER_TICK_SECONDS", 5)),
        webhook_max_attempts=int(env.get("WEBHOOK_MAX_ATTEMPTS", 8)),
        webhook_backoff_seconds=float(env.get("WEBHOOK_BACKOFF_SECONDS", 30)),
        webhook_timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", 10)),
    )
