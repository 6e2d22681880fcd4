"""POST /v1/orders, GET /v1/orders/{order_id}, POST /v1/orders/{order_id}/refunds (client)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter

from services.loyalty.orders import service
from services.loyalty.orders.schemas import ID_PATTERN, OrderIn, OrderView, RefundIn, RefundResult
from shared.auth import Principal
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent, run_idempotent_decided

__all__ = ["OrderController"]

OrderIdPath = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post(
        "/",
        operation_id="placeOrder",
        summary="Record a paid order and earn its points",
        description="Points = floor(paid × `earn_points` / `earn_per_amount` × the effective tier's multiplier "
        "/ 10000) plus the earning rules in force at `paid_at`, split over the items by largest remainder. "
        "Pending until `paid_at` + `pending_days` (tenant-local calendar days), then released by the "
        "`release-pending-points` job; with `pending_days` 0 they are available at once (open debt repaid "
        "first). The lot's expiry is fixed now, from `paid_at`. Upgrades the earned tier at once when the "
        "qualifying points cross a threshold. Idempotent by `order_id`: a retry with the same body returns "
        "the first result; another body is 409 `idempotency-conflict`. An unknown member is 404 "
        "`member-not-found` and is not remembered. 422: `currency-mismatch`, `duplicate-item`, "
        "`paid-at-in-future` (more than 5 minutes ahead), `invalid-timestamp`, `amount-too-large`, "
        "`points-too-large`, `invalid-item`.",
        responses={
            201: ResponseSpec(OrderView, description="The order and its points", generate_examples=False),
            **problem_responses(401, 404, 409, 422),
        },
        status_code=201,
    )
    async def place(
        self, request: Request[Principal, Any, Any], data: JSONBody[OrderIn], db: NamedDependency[asyncpg.Connection]
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id
        # Before the claim: an unregistered member is not a pinned refusal (see the description). The
        # same statement reads everything the order is decided from.
        context = await service.order_context(db, tenant_id, data)
        prepared: list[service.PreparedOrder] = []

        async def decide() -> tuple[int, OrderView]:
            prepared.append(await service.prepare_order(db, tenant_id, data, context))
            return 201, prepared[0].view

        async def apply() -> None:
            await service.apply_order(db, tenant_id, prepared[0])

        # The response is known before anything is written, so the claim stores it at once (no savepoint).
        outcome = await run_idempotent_decided(
            db,
            tenant_id=tenant_id,
            scope="orders",
            key=data.order_id,
            body=data,
            decide=decide,
            apply=apply,
            instance=request.url.path,
        )
        return outcome_response(outcome)

    @get(
        "/{order_id:str}",
        operation_id="getOrder",
        summary="An order: points per item, refunds and reversals, pending or released",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], order_id: OrderIdPath, db: NamedDependency[asyncpg.Connection]
    ) -> Response[OrderView]:
        view = await service.get_order(db, request.user.tenant_id, order_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/{order_id:str}/refunds",
        operation_id="refundOrder",
        summary="Refund items of an order and reverse their points pro rata",
        description="Per item, the points reversed so far are floor(points × refunded / paid), so a full "
        "refund reverses all of them. Taken from the order's pending points while they are pending; after "
        "the release from available points (first-expiring first), the shortfall booked as debt "
        "(`negative_balance = debt`, repaid from the next points made available) or written off (`cap`). "
        "Qualifying points drop by the points reversed. Idempotent by `refund_id`. 422: "
        "`refund-exceeds-paid`, `unknown-item`, `duplicate-item`. An unknown order is 404 "
        "`order-not-found` and is not remembered.",
        responses={
            201: ResponseSpec(
                RefundResult, description="The refund, the points it reversed, the order", generate_examples=False
            ),
            **problem_responses(401, 404, 409, 422),
        },
        status_code=201,
    )
    async def refund(
        self,
        request: Request[Principal, Any, Any],
        order_id: OrderIdPath,
        data: JSONBody[RefundIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id
        # Locked before the claim: refunds of one order and its release run one at a time.
        order = await service.lock_order(db, tenant_id, order_id)

        async def run() -> tuple[int, RefundResult]:
            return 201, await service.refund_order(db, tenant_id, order, data)

        outcome = await run_idempotent(
            db,
            tenant_id=tenant_id,
            scope="refunds",
            key=data.refund_id,
            body=[order_id, data],  # a refund id is the tenant's: reusing it on another order is a conflict
            run=run,
            instance=request.url.path,
        )
        return outcome_response(outcome)
