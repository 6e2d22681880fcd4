"""POST /v1/orders, GET /v1/orders/{order_id}, receipt and refunds (client)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter

from services.referral.orders import service
from services.referral.orders.schemas import OrderIn, OrderView, ReceivedIn, RefundIn, RefundResult
from shared.auth import Principal
from shared.http import content_etag, outcome_response, problem_responses
from shared.idempotency import run_idempotent, run_idempotent_decided

__all__ = ["OrderController"]

OrderIdPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64)]


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post(
        "/",
        operation_id="placeOrder",
        summary="Record a paid order and accrue its commission up the buyer's chain (frozen)",
        description="Snapshots the buyer's chain, the rates and the programme version on the order, so later "
        "rebinding or configuration changes never change what it owes. Idempotent by `order_id`: a retry "
        "with the same body returns the first result; another body is 409 `idempotency-conflict`. An unknown "
        "buyer is 404 `member-not-found` and is not remembered, so the order can be sent again once the "
        "member is registered.",
        responses={
            201: ResponseSpec(
                OrderView, description="The order, its chain snapshot and its commission", generate_examples=False
            ),
            **problem_responses(401, 404, 409, 422),
        },
        status_code=201,
    )
    async def place(
        self, request: Request[Principal, Any, Any], data: JSONBody[OrderIn], db: NamedDependency[asyncpg.Connection]
    ) -> Response[bytes]:
        tenant_id = request.user.tenant_id
        # Before the claim: an unregistered buyer is not a pinned refusal (see the description). The same
        # statement reads everything the order is priced on.
        snapshot = await service.snapshot_chain(db, tenant_id, data.buyer_id)
        prepared: list[service.PreparedOrder] = []

        async def decide() -> tuple[int, OrderView]:
            prepared.append(service.prepare_order(data, snapshot, datetime.now(UTC)))
            return 201, prepared[0].view

        async def apply() -> None:
            await service.apply_order(db, tenant_id, data, prepared[0])

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
        summary="An order: chain snapshot, items with refunds, commission per item and level with state",
        responses=problem_responses(401, 404),
    )
    async def read(
        self, request: Request[Principal, Any, Any], order_id: OrderIdPath, db: NamedDependency[asyncpg.Connection]
    ) -> Response[OrderView]:
        view = await service.get_order(db, request.user.tenant_id, order_id)
        return Response(view, headers={"ETag": content_etag(view)})

    @post(
        "/{order_id:str}/received",
        operation_id="recordOrderReceived",
        summary="Record that the buyer received the order",
        description="When the programme counted the freeze from receipt (`freeze_from = received`) at "
        "payment, the order's waiting commission is released `freeze_days` after `received_at`, with the "
        "`freeze_days` the programme had when the order was paid (a later change of the programme does not "
        "move it). Otherwise it is only recorded. Sending the same time again changes nothing; another time "
        "is 409 `already-received`.",
        responses=problem_responses(401, 404, 409, 422),
        status_code=200,
    )
    async def received(
        self,
        request: Request[Principal, Any, Any],
        order_id: OrderIdPath,
        data: JSONBody[ReceivedIn],
        db: NamedDependency[asyncpg.Connection],
    ) -> OrderView:
        return await service.record_receipt(db, request.user.tenant_id, order_id, data)

    @post(
        "/{order_id:str}/refunds",
        operation_id="refundOrder",
        summary="Refund items of an order and reverse their commission pro rata",
        description="Per item and level the commission reversed so far is floor(commission × refunded / "
        "paid), so a full refund reverses all of it. Taken from frozen while not yet released; after "
        "release from available, the rest into debt (`clawback = debt`, repaid from the member's next "
        "released commission) or written off (`cap`). Idempotent by `refund_id`. An unknown order is 404 "
        "`order-not-found` and is not remembered.",
        responses={
            201: ResponseSpec(
                RefundResult, description="The refund and the commission it reversed", generate_examples=False
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
        # Locked before the claim: refunds of one order run one at a time; an unknown order is not pinned.
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
