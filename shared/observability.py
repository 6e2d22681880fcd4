"""Logs (structlog, JSON or console), the request id, and the Prometheus metrics of §3.7."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from time import perf_counter
from typing import Any

import asyncpg
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "LEDGER_ENTRIES",
    "UNROUTED",
    "HttpMetricsMiddleware",
    "RequestIdMiddleware",
    "configure_logging",
    "count_unrouted",
    "request_id_of",
    "unwatch_pool",
    "watch_pool",
]

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


def _new_request_id() -> str:
    """What `uuid.uuid4().hex` returns (version 4, RFC 4122 variant), without building a `UUID`: 1 µs, not 5."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def request_id_of(scope: Scope) -> str:
    """The request's sane `X-Request-ID` (the last one sent), or a new one."""
    incoming = b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value  # the last one wins, as with dict(headers)
    text = incoming.decode("latin-1")
    return text if _REQUEST_ID.match(text) else _new_request_id()


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID` or make one; bind it to every log line and echo it back.

    Plain ASGI on the raw header list: no `Headers` or `MutableScopeHeaders` built per request."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"]
                if type(headers) is not list:
                    headers = message["headers"] = list(headers)
                for i, (name, _) in enumerate(headers):
                    if name.lower() == b"x-request-id":  # set, not add: one header, ours
                        headers[i] = header
                        headers[i + 1 :] = [h for h in headers[i + 1 :] if h[0].lower() != b"x-request-id"]
                        break
                else:
                    headers.append(header)
            await send(message)

        await self.app(scope, receive, send_with_id)


# The HTTP metrics Litestar's PrometheusMiddleware exposed (`PrometheusConfig(prefix="http", group_path=True)`):
# same names, help texts, label names and values, so dashboards and alerts are unchanged.
_LABELS = ("method", "path", "status_code", "app_name")
_IN_PROGRESS = Gauge(
    "http_requests_in_progress", "Total requests currently in progress", _LABELS, multiprocess_mode="livesum"
)
_REQUESTS = Counter("http_requests_total", "Total requests", _LABELS)
_DURATION = Histogram("http_request_duration_seconds", "Request duration, in seconds", _LABELS)
_ERRORS: list[Counter] = []  # registered on the first 5xx, as Litestar did: no empty family before that

# The label children, resolved once per (app, method, route template[, status]) instead of `labels()`
# (str() of every value, a lock, a dict lookup) per request. Bounded: templates, methods and statuses are.
_PROGRESS_CHILDREN: dict[tuple[str, str, str], Any] = {}
_DONE_CHILDREN: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}


def _errors() -> Counter:
    if not _ERRORS:
        _ERRORS.append(Counter("http_requests_error_total", "Total errors in requests", _LABELS))
    return _ERRORS[0]


def _done_children(key: tuple[str, str, str, int]) -> tuple[Any, Any, Any]:
    app_name, method, path, status = key
    values = (method, path, str(status), app_name)
    error = _errors().labels(*values) if status >= 500 else None
    children = (_REQUESTS.labels(*values), _DURATION.labels(*values), error)
    _DONE_CHILDREN[key] = children
    return children


UNROUTED = "(unrouted)"  # the `path` label of requests the router refused: no template, and ids stay out
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_UNROUTED_CHILDREN: dict[tuple[str, str, int], Any] = {}


def count_unrouted(app_name: str, method: str, status: int) -> None:
    """Count a request the router refused (404, 405, a bad Host header). No route means no route
    middleware saw it; its duration is not known here, so only `http_requests_total` moves (no
    empty duration series either). Any other method is counted as `OTHER`: the client chooses it,
    and labels must stay few."""
    key = (app_name, method if method in _METHODS else "OTHER", status)
    count = _UNROUTED_CHILDREN.get(key)
    if count is None:
        count = _UNROUTED_CHILDREN[key] = _REQUESTS.labels(key[1], UNROUTED, str(status), app_name)
    count.inc()
    if status >= 500:
        _errors().labels(key[1], UNROUTED, str(status), app_name).inc()


class HttpMetricsMiddleware:
    """Requests by method, route template and status: count, duration, in progress, 5xx.

    What Litestar's PrometheusMiddleware recorded, in plain ASGI: the template is the router's
    `path_template` (this middleware runs per route, after routing), the children are cached.
    As before: the status is the response's (200 if none was started, e.g. when an exception
    escapes to the app's handler), the duration runs to the last body message (0 without one)."""

    __slots__ = ("app", "app_name")

    def __init__(self, app: ASGIApp, app_name: str) -> None:
        self.app = app
        self.app_name = app_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            method = scope["method"]
        elif kind == "websocket":
            method = kind
        else:
            await self.app(scope, receive, send)
            return
        path = scope["path_template"]
        progress_key = (self.app_name, method, path)
        progress = _PROGRESS_CHILDREN.get(progress_key)
        if progress is None:
            progress = _PROGRESS_CHILDREN[progress_key] = _IN_PROGRESS.labels(method, path, "200", self.app_name)
        start = perf_counter()
        status = 200
        end = 0.0

        async def send_measured(message: Message) -> None:
            nonlocal status, end
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                end = perf_counter()
            await send(message)

        progress.inc()
        try:
            await self.app(scope, receive, send_measured)
        finally:
            progress.dec()
            key = (self.app_name, method, path, status)
            count, duration, error = _DONE_CHILDREN.get(key) or _done_children(key)
            if error is not None:
                error.inc()
            count.inc()
            duration.observe(end - start if end else 0)
