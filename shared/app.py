"""The app factory both services use: pool lifespan, auth, errors, logging, metrics, OpenAPI."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import AuthMiddleware, KeyCache
from shared.controllers import HealthController, JobController, LedgerController, TenantController
from shared.db import create_pool, provide_connection, provide_transaction, request_slots
from shared.events.controllers import WebhookController
from shared.events.webhooks import DELIVER_WEBHOOKS
from shared.finance.controllers import FinanceController, LiabilityController
from shared.finance.verifications import verify_ledger_job
from shared.http import EXCEPTION_HANDLERS, strict_body
from shared.jobs import Job, Scheduler
from shared.ledger import Check
from shared.ledger.liability import LiabilitySpec
from shared.observability import (
    HttpMetricsMiddleware,
    RequestIdMiddleware,
    configure_logging,
    count_unrouted,
    unwatch_pool,
    watch_pool,
)
from shared.settings import Settings

__all__ = ["create_service_app"]

API_VERSION = "0.1.0"


def _unrouted_counter(app_name: str) -> Any:
    """An exception hook: the router's own refusals (no route in the scope) go into the request metrics."""

    async def hook(exc: Exception, scope: Scope) -> None:
        if scope["type"] == "http" and "route_handler" not in scope:
            count_unrouted(app_name, scope["method"], exc.status_code if isinstance(exc, HTTPException) else 500)

    return hook


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
    opt = {"public": True}


def create_service_app(
    settings: Settings,
    *,
    title: str,
    description: str,
    route_handlers: Sequence[Any] = (),
    verify_checks: Sequence[Check] = (),
    jobs: Sequence[Job] = (),
    liability: LiabilitySpec | None = None,
) -> Litestar:
    configure_logging(settings.log_level, settings.log_json)
    all_jobs = (*jobs, DELIVER_WEBHOOKS, verify_ledger_job(verify_checks))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        app.state.pool = await create_pool(settings)
        app.state.request_slots = request_slots(settings)
        watch_pool(settings.service, app.state.pool)
        scheduler = Scheduler(app.state.pool, all_jobs, settings)
        if settings.scheduler_enabled:
            scheduler.start()
        # What start-up built (routes, schemas, codecs) lives as long as the app: frozen, the collector's
        # full passes skip its ~64k objects instead of pausing every request for ~30 ms to walk them.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # a process that builds apps one after another (the tests) collects them again
            await scheduler.stop()
            unwatch_pool(app.state.pool)
            await app.state.pool.close()

    allowed_methods: dict[str, bytes] = {}
    app = Litestar(
        route_handlers=[
            HealthController,
            TenantController,
            LedgerController,
            FinanceController,
            *([LiabilityController] if liability is not None else []),
            JobController,
            WebhookController,
            MetricsController,
            *route_handlers,
        ],
        dependencies={
            "db": Provide(provide_transaction),
            "conn": Provide(provide_connection),
        },
        # Plain ASGI middleware, run per route after routing (unrouted 404/405 answers pass none of them:
        # the `after_exception` hook counts those).
        middleware=[
            DefineMiddleware(_AllowHeaderFix, allowed_methods=allowed_methods),
            RequestIdMiddleware,
            DefineMiddleware(HttpMetricsMiddleware, app_name=settings.service),
            DefineMiddleware(AuthMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=[_unrouted_counter(settings.service)],
        before_request=strict_body,
        lifespan=[lifespan],
        state=_state(settings, verify_checks, all_jobs, liability),
        openapi_config=OpenAPIConfig(
            title=title,
            version=API_VERSION,
            description=description,
            path="/docs",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            security=[{"bearer": []}],
            components=_security_components(),
        ),
        request_max_body_size=1_048_576,
        debug=False,
    )
    allowed_methods.update(
        {
            route.path_format: ", ".join(sorted(route.methods)).encode()
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
    )
    return app


class _AllowHeaderFix:
    """Litestar 2.x answers OPTIONS with the methods of the first handler registered on a path only
    (litestar#4169, fixed in 3.0): list every method of the route instead. A route middleware rather
    than a `before_send` hook, which would wrap `send` for every request; only OPTIONS pays."""

    __slots__ = ("allowed_methods", "app")

    def __init__(self, app: ASGIApp, allowed_methods: dict[str, bytes]) -> None:
        self.app = app
        self.allowed_methods = allowed_methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "OPTIONS":
            await self.app(scope, receive, send)
            return
        allow = self.allowed_methods.get(scope.get("path_template", ""))

        async def send_fixed(message: Message) -> None:
            if message["type"] == "http.response.start" and allow is not None:
                headers = list(message.get("headers", ()))
                if any(name.lower() == b"allow" for name, _ in headers):
                    message["headers"] = [*((k, v) for k, v in headers if k.lower() != b"allow"), (b"allow", allow)]
            await send(message)

        await self.app(scope, receive, send_fixed)


def _state(
    settings: Settings, verify_checks: Sequence[Check], jobs: Sequence[Job], liability: LiabilitySpec | None
) -> State:
    return State(
        {
            "settings": settings,
            "jobs": tuple(jobs),
            "verify_checks": tuple(verify_checks),
            "liability": liability,
            "key_cache": KeyCache(settings.auth_cache_seconds),
        }
    )


def _security_components() -> Components:
    return Components(
        security_schemes={
            "bearer": SecurityScheme(
                type="http",
                scheme="bearer",
                description="A tenant API key (`admin` or `client` scope), or the operator token on /v1/tenants",
            )
        }
    )
