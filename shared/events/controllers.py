"""Webhook subscriptions and their deliveries (admin)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from shared.auth import Principal, requires_admin
from shared.events.webhooks import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookIn,
    get_webhook,
    list_deliveries,
    list_webhooks,
    replay_delivery,
    upsert_webhook,
)
from shared.http import problem_responses
from shared.pagination import Page

__all__ = ["WebhookController"]

WebhookId = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(min_length=1, max_length=500)]


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    guards = [requires_admin]

    @put(
        "/{webhook_id:str}",
        operation_id="upsertWebhook",
        summary="Create or replace a webhook subscription",
        description="Deliveries are signed in the Standard Webhooks layout (`webhook-id` = event id, "
        "`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`). "
        "An empty `event_types` subscribes to every event. The secret is never returned.",
        responses={201: ResponseSpec(Webhook, description="Created"), **problem_responses(401, 403, 422)},
        status_code=200,
    )
    async def upsert(
        self,
        request: Request[Principal, Any, Any],
        webhook_id: WebhookId,
        data: JSONBody[WebhookIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[Webhook]:
        webhook, created = await upsert_webhook(db, request.user.tenant_id, webhook_id, data)
        return Response(webhook, status_code=201 if created else 200)

    @get("/", operation_id="listWebhooks", summary="List webhook subscriptions", responses=problem_responses(401, 403))
    async def list(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Webhook]:
        return await list_webhooks(db, request.user.tenant_id, limit, cursor)

    @get(
        "/{webhook_id:str}",
        operation_id="getWebhook",
        summary="Read a webhook subscription",
        responses=problem_responses(401, 403, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], webhook_id: WebhookId, db: NamedDependency[asyncpg.Connection]
    ) -> Webhook:
        return await get_webhook(db, request.user.tenant_id, webhook_id)

    @get(
        "/{webhook_id:str}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="A subscription's deliveries, newest first",
        responses=problem_responses(401, 403, 404),
    )
    async def deliveries(
        self,
        request: Request[Principal, Any, Any],
        webhook_id: WebhookId,
        db: NamedDependency[asyncpg.Connection],
        status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Delivery]:
        return await list_deliveries(db, request.user.tenant_id, webhook_id, status=status, limit=limit, cursor=cursor)

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:uuid}/replay",
        operation_id="replayWebhookDelivery",
        summary="Send a delivery again (also a dead letter); receivers deduplicate by event id",
        responses=problem_responses(401, 403, 404),
        status_code=200,
    )
    async def replay(
        self,
        request: Request[Principal, Any, Any],
        webhook_id: WebhookId,
        delivery_id: Annotated[UUID, PathParameter()],
        db: NamedDependency[asyncpg.Connection],
    ) -> Delivery:
        return await replay_delivery(db, request.user.tenant_id, webhook_id, delivery_id)
