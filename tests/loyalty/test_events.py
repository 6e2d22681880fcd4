"""The loyalty service's events end to end (§3.8): a shop's month in miniature emits every event the
issue names, the dispatcher job delivers each one signed to a real receiver, retries the ones the receiver
refused, and a consumer deduplicating by event id processes each event exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.events import verify_signature
from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, configure, put_member
from tests.shared.receiver import Receiver

SECRET = "loyalty-events-secret"
REQUIRED = {
    "member.tier_changed",
    "points.earned",
    "points.redeemed",
    "points.expiring",
    "points.expired",
    "points.reversed",
    "plan.activated",
    "plan.expired",
    "hold.captured",
    "hold.voided",
}


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), f"{path}: {response.text}"
    result: dict[str, Any] = response.json()
    return result


async def put(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> None:
    response = await client.put(path, json=body, headers=headers)
    assert response.status_code in (200, 201), f"{path}: {response.text}"


async def run_job(client: httpx.AsyncClient, tenant: TenantKeys, name: str, as_of: datetime) -> int:
    result = await post(client, tenant.admin, f"/v1/jobs/{name}", {"as_of": iso(as_of)})
    processed: int = result["processed"]
    return processed


async def a_month_of_activity(client: httpx.AsyncClient, tenant: TenantKeys, now: datetime) -> None:
    """Earning that crosses a tier, a refund, a plan, a redemption, two holds, then time passes."""
    await configure(
        client,
        tenant,
        pending_days=0,
        expiry={"kind": "rolling_days", "n": 20},
        tier_window={"kind": "lifetime"},
    )
    await put_member(client, tenant, "mei")
    order = {
        "order_id": "o-1",
        "member_id": "mei",
        "currency": "CNY",
        "paid_at": iso(now - timedelta(hours=1)),
        "items": [{"item_id": "i-1", "sku": "tea", "category": "food", "amount": 150_000, "quantity": 1}],
    }
    earned = await post(client, tenant.client, "/v1/orders", order)
    assert earned["points"] == 1500  # 1 point per yuan: crosses premium (1000)
    await post(
        client,
        tenant.client,
        "/v1/orders/o-1/refunds",
        {"refund_id": "r-1", "items": [{"item_id": "i-1", "amount": 10_000}]},
    )
    await put(
        client, tenant.admin, "/v1/plans/gold", {"name": "Gold", "duration": "P1M", "price": 990, "tier_code": "elite"}
    )
    await post(
        client,
        tenant.client,
        "/v1/members/mei/subscriptions",
        {"subscription_id": "s-1", "plan_code": "gold", "paid_amount": 990, "paid_at": iso(now)},
    )
    await put(client, tenant.admin, "/v1/rewards/mug", {"name": "Mug", "cost_points": 100, "kind": "gift"})
    await post(client, tenant.client, "/v1/members/mei/redemptions", {"redemption_id": "rd-1", "reward_code": "mug"})
    await post(client, tenant.client, "/v1/members/mei/holds", {"hold_id": "h-1", "points": 100})
    await post(client, tenant.client, "/v1/holds/h-1/capture", {"points": 50})
    await post(client, tenant.client, "/v1/members/mei/holds", {"hold_id": "h-2", "points": 100})
    await post(client, tenant.client, "/v1/holds/h-2/void", {})

    assert await run_job(client, tenant, "send-expiry-reminders", now) >= 1  # the lot expires in 20 days
    assert await run_job(client, tenant, "expire-points", now + timedelta(days=21)) >= 1
    assert await run_job(client, tenant, "expire-plans", now + timedelta(days=40)) == 1


async def test_every_event_is_delivered_signed_retried_and_seen_once(
    loyalty_client: httpx.AsyncClient, tenant: TenantKeys, receiver: Receiver
) -> None:
    client = loyalty_client
    await put(client, tenant.admin, "/v1/webhooks/all", {"url": receiver.url, "secret": SECRET, "event_types": []})
    now = datetime.now(UTC)
    await a_month_of_activity(client, tenant, now)
    await assert_ledger_ok(client, tenant)

    receiver.fail_first = 3  # the first three deliveries are refused and must be retried
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    first_pass = await run_job(client, tenant, "deliver-webhooks", t0)
    assert await run_job(client, tenant, "deliver-webhooks", t0 + timedelta(seconds=29)) == 0  # backoff: 30 s
    second_pass = await run_job(client, tenant, "deliver-webhooks", t0 + timedelta(minutes=1))
    # The three refused ones (and any attempt the busy machine let time out) go again after the backoff.
    assert second_pass >= 3

    listed = await client.get("/v1/webhooks/all/deliveries", params={"limit": 200}, headers=tenant.admin)
    assert listed.status_code == 200, listed.text
    deliveries = listed.json()["items"]
    assert len(deliveries) == first_pass
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert sorted(d["attempts"] for d in deliveries if d["attempts"] > 1) == [2] * second_pass

    # A replay of a delivered event reaches the receiver again under the same event id.
    replayed = await client.post(
        f"/v1/webhooks/all/deliveries/{deliveries[0]['delivery_id']}/replay", json={}, headers=tenant.admin
    )
    assert replayed.status_code == 200, replayed.text
    assert await run_job(client, tenant, "deliver-webhooks", datetime.now(UTC) + timedelta(seconds=1)) == 1

    assert [r.status for r in receiver.requests].count(500) == 3
    for request in receiver.requests:
        assert verify_signature(SECRET, request.headers, request.body) == request.headers["webhook-id"]
    accepted = receiver.accepted()
    assert len(accepted) == first_pass + 1
    # The consumer's view: each event once, in spite of the retries and the replay.
    assert len(receiver.event_ids()) == first_pass
    types = {r.envelope()["type"] for r in accepted}
    assert REQUIRED <= types, REQUIRED - types
    for r in accepted:
        assert r.envelope()["tenant_id"] == tenant.tenant_id
