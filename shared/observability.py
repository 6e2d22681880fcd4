"""Logs (structlog, JSON or console), the request id, and the Prometheus metrics of §3.7."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import Any

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

__all__ = ["LEDGER_ENTRIES", "configure_logging", "RequestIdMiddleware"]

LEDGER_ENTRIES = Counter(
    "ledger_entries_posted_total", "Ledger entries posted through the API", ["service", "kind"]
)

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
        cache_logger_on_first_use=True,
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
