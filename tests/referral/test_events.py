"""The referral service's events (§3.8, §6) reach a subscriber through the shared webhook mechanism:
one scenario makes every kind happen, the `deliver-webhooks` job sends them to a real HTTP receiver,
and each arrives once, signed with the subscription's secret, with the figures the ledger shows."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.events import verify_signature
from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register
from tests.referral.test_debt import withdraw
from tests.referral.test_orders import RELEASE_AT, chain, order_body, place, run_release
from tests.shared.receiver import Receiver

SECRET = "referral-hook-secret"
EVERY_TYPE = {
    "referral.bound",
    "referral.flagged",
    "commission.accrued",
    "commission.released",
    "commission.reversed",
    "withdrawal.requested",
    "withdrawal.completed",
    "withdrawal.rejected",
    "withdrawal.failed",
}


async def _post(client: httpx.AsyncClient, tenant: TenantKeys, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def _make_every_event(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    """A ← B bound; G registered with F's invite code from F's device (flagged); B's orders accrue, one
    is half refunded before release, the rest released; then A's withdrawals end completed, rejected
    and failed."""
    await configure(client, tenant, auto_approve_limit=0)
    await chain(client, tenant, "A", "B")
    code = (await register(client, tenant, "F", device_id="dev-1"))["invite_code"]
    flagged = await register(client, tenant, "G", invite_code=code, device_id="dev-1")
    assert (flagged["flagged"], flagged["flag_reason"]) == (True, "same-device")

    await place(client, tenant, order_body("o-1", "B", ("sku-1", 10000)))
    await place(client, tenant, order_body("o-2", "B", ("sku-1", 30000)))
    refund = {"refund_id": "r-1", "items": [{"item_id": "sku-1", "amount": 5000}]}
    refunded = await client.post("/v1/orders/o-1/refunds", json=refund, headers=tenant.client)
    assert refunded.status_code == 201, refunded.text
    assert (await run_release(client, tenant, RELEASE_AT))["processed"] == 2

    for withdrawal_id, amount in (("w-paid", 1000), ("w-rejected", 500), ("w-failed", 300)):
        requested = await withdraw(client, tenant, "A", withdrawal_id, amount)
        assert requested.status_code == 201 and requested.json()["status"] == "requested", requested.text
    await _post(client, tenant, "/v1/withdrawals/w-paid/approve", {})
    await _post(client, tenant, "/v1/withdrawals/w-paid/complete", {"payout_ref": "pay-1"})
    await _post(client, tenant, "/v1/withdrawals/w-rejected/reject", {"reason": "account name mismatch"})
    await _post(client, tenant, "/v1/withdrawals/w-failed/approve", {})
    await _post(client, tenant, "/v1/withdrawals/w-failed/fail", {"reason": "bank refused the transfer"})


async def test_every_referral_event_is_delivered_once_and_signed(
    referral_client: httpx.AsyncClient, tenant: TenantKeys, receiver: Receiver
) -> None:
    hook = {"url": receiver.url, "secret": SECRET, "event_types": [], "active": True}
    subscribed = await referral_client.put("/v1/webhooks/all", json=hook, headers=tenant.admin)
    assert subscribed.status_code in (200, 201), subscribed.text
    await _make_every_event(referral_client, tenant)
    await assert_ledger_ok(referral_client, tenant)

    as_of = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    sent = await _post(referral_client, tenant, "/v1/jobs/deliver-webhooks", {"as_of": as_of})
    again = await _post(referral_client, tenant, "/v1/jobs/deliver-webhooks", {"as_of": as_of})

    assert again["processed"] == 0  # delivered once: nothing is left due
    assert len(receiver.event_ids()) == len(receiver.requests) == sent["processed"]
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in receiver.requests:
        envelope = request.envelope()
        assert verify_signature(SECRET, request.headers, request.body), request.headers
        assert envelope["tenant_id"] == tenant.tenant_id and request.headers["x-event-type"] == envelope["type"]
        by_type[envelope["type"]].append(envelope["data"])
    assert EVERY_TYPE <= set(by_type), sorted(EVERY_TYPE - set(by_type))

    # The figures are the ledger's: 10 % of 100.00 and 300.00 yuan accrued; half of the first reversed.
    assert sorted(e["amount"] for e in by_type["commission.accrued"]) == [1000, 3000]
    assert [(r["member_id"], r["amount"]) for e in by_type["commission.reversed"] for r in e["reversals"]] == [
        ("A", 500)
    ]
    assert sum(e["amount"] for e in by_type["commission.released"]) == 3500
    assert {e["withdrawal_id"] for e in by_type["withdrawal.requested"]} == {"w-paid", "w-rejected", "w-failed"}
    ends = ("withdrawal.completed", "withdrawal.rejected", "withdrawal.failed")
    assert {(end, e["withdrawal_id"]) for end in ends for e in by_type[end]} == {
        ("withdrawal.completed", "w-paid"),
        ("withdrawal.rejected", "w-rejected"),
        ("withdrawal.failed", "w-failed"),
    }
    assert {(e["invitee_id"], e["inviter_id"]) for e in by_type["referral.bound"]} == {("B", "A"), ("G", "F")}
    assert [(e["invitee_id"], e["inviter_id"], e["reason"]) for e in by_type["referral.flagged"]] == [
        ("G", "F", "same-device")
    ]
