"""Logs (structlog, JSON or console), the request id, and the Prometheus metrics of §3.7."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LEDGER_ENTRIES", "RequestIdMiddleware", "configure_logging", "unwatch_pool", "watch_pool"]

LEDGER_ENTRIES = Counter(
    "ledger_entries_written",
    "Ledger entries written by this process, by kind (replays excluded; an entry whose transaction "
    "later rolled back is counted too)",
    ["kind"],
)

_POOLS: dict[int, tuple[str, asyncpg.Pool]] = {}


class _PoolCollector(Collector):
    """Pool size and idle connections, read at scrape time from the live pools of this process."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("db_pool_connections", "Open connections in the pool", labels=["service"])
        idle = GaugeMetricFamily("db_pool_idle_connections", "Idle connections in the pool", labels=["service"])
        busy = GaugeMetricFamily("db_pool_busy_connections", "Connections lent to requests", labels=["service"])
        for service, pool in list(_POOLS.values()):
            size.add_metric([service], pool.get_size())
            idle.add_metric([service], pool.get_idle_size())
            busy.add_metric([service], pool.get_size() - pool.get_idle_size())
        yield from (size, idle, busy)


REGISTRY.register(_PoolCollector())


def watch_pool(service: str, pool: asyncpg.Pool) -> None:
    _POOLS[id(pool)] = (service, pool)


def unwatch_pool(pool: asyncpg.Pool) -> None:
    _POOLS.pop(id(pool), None)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """JSON lines in production, a readable console on a terminal; contextvars carry request/tenant."""
    as_json = not sys.stdout.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(),
        # Not cached: module-level loggers follow a later configure() (a CLI sending logs to stderr,
        # an app factory with another level) instead of keeping the first stream and level forever.
        cache_logger_on_first_use=False,
    )


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID` or make one; bind it to every log line and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
