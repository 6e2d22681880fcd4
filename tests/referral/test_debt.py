"""Clawback after payout (§4.2, §6.4): a refund beyond available becomes debt, which blocks withdrawals
and is repaid first from the member's next released commission; under `cap` the shortfall is lost."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure
from tests.referral.test_orders import RELEASE_AT, chain, commission, order_body, place, run_release


async def withdraw(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, withdrawal_id: str, amount: int):
    body = {"withdrawal_id": withdrawal_id, "amount": amount, "channel": "wechat", "account_ref": "wx-" + member_id}
    return await client.post(f"/v1/members/{member_id}/withdrawals", json=body, headers=tenant.client)


async def paid_out(client: httpx.AsyncClient, tenant: TenantKeys, member_id: str, withdrawal_id: str, amount: int):
    requested = await withdraw(client, tenant, member_id, withdrawal_id, amount)
    assert requested.status_code == 201 and requested.json()["status"] == "approved", requested.text
    completed = await client.post(
        f"/v1/withdrawals/{withdrawal_id}/complete", json={"payout_ref": "pay-" + withdrawal_id}, headers=tenant.admin
    )
    assert completed.status_code == 200, completed.text


async def refund_all(client: httpx.AsyncClient, tenant: TenantKeys, order_id: str, item_id: str, amount: int):
    body = {"refund_id": "r-" + order_id, "items": [{"item_id": item_id, "amount": amount}]}
    response = await client.post(f"/v1/orders/{order_id}/refunds", json=body, headers=tenant.client)
    assert response.status_code == 201, response.text
    return response.json()


def balances(frozen: int = 0, available: int = 0, withdrawing: int = 0, debt: int = 0) -> dict[str, Any]:
    return {"frozen": frozen, "available": available, "withdrawing": withdrawing, "debt": debt}


async def _paid_out_then_refunded(client: httpx.AsyncClient, tenant: TenantKeys, clawback: str) -> dict[str, Any]:
    """A earns 1000 + 300, withdraws 1000 (paid out), then the 1000 order is refunded in full."""
    await configure(client, tenant, clawback=clawback, auto_approve_limit=100_000, withdrawal_fee_bps=100)
    await chain(client, tenant, "A", "B")
    await place(client, tenant, order_body("o-1", "B", ("sku-1", 10000)))
    await place(client, tenant, order_body("o-2", "B", ("sku-1", 3000)))
    await run_release(client, tenant, RELEASE_AT)
    await paid_out(client, tenant, "A", "w-1", 1000)
    assert await commission(client, tenant, "A") == balances(available=300)
    await assert_ledger_ok(client, tenant)
    return await refund_all(client, tenant, "o-1", "sku-1", 10000)


async def test_debt_blocks_withdrawals_and_is_repaid_from_the_next_commission(referral_client, tenant) -> None:
    refund = await _paid_out_then_refunded(referral_client, tenant, "debt")
    assert [(r["from_available"], r["to_debt"], r["written_off"]) for r in refund["reversals"]] == [(300, 700, 0)]
    assert await commission(referral_client, tenant, "A") == balances(debt=700)
    await assert_ledger_ok(referral_client, tenant)

    # New commission: frozen does not repay debt, and the debt blocks withdrawing.
    await place(
        referral_client,
        tenant,
        order_body("o-3", "B", ("sku-1", 5000), ("sku-2", 5000), paid_at="2026-03-10T10:00:00+08:00"),
    )
    blocked = await withdraw(referral_client, tenant, "A", "w-2", 100)
    assert blocked.status_code == 409 and blocked.json()["type"] == "open-debt"
    assert await commission(referral_client, tenant, "A") == balances(frozen=1000, debt=700)

    # Released item by item: 500 repays 500, then 500 repays the last 200 and 300 becomes available.
    released = await run_release(referral_client, tenant, "2026-03-17T02:00:00Z")
    assert released["processed"] == 2
    assert await commission(referral_client, tenant, "A") == balances(available=300)
    await assert_ledger_ok(referral_client, tenant)

    allowed = await withdraw(referral_client, tenant, "A", "w-3", 300)
    assert allowed.status_code == 201, allowed.text
    assert await commission(referral_client, tenant, "A") == balances(withdrawing=300)
    await assert_ledger_ok(referral_client, tenant)


async def test_under_cap_the_shortfall_is_written_off(referral_client, tenant) -> None:
    refund = await _paid_out_then_refunded(referral_client, tenant, "cap")
    assert [(r["from_available"], r["to_debt"], r["written_off"]) for r in refund["reversals"]] == [(300, 0, 700)]
    assert refund["commission_reversed"] == 1000
    assert await commission(referral_client, tenant, "A") == balances()
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    row = view["items"][0]["commissions"][0]
    assert (row["state"], row["reversed_amount"], row["written_off"]) == ("reversed", 1000, 700)
    await assert_ledger_ok(referral_client, tenant)

    await place(referral_client, tenant, order_body("o-3", "B", ("sku-1", 5000), paid_at="2026-03-10T10:00:00+08:00"))
    await run_release(referral_client, tenant, "2026-03-17T02:00:00Z")
    assert await commission(referral_client, tenant, "A") == balances(available=500)
    assert (await withdraw(referral_client, tenant, "A", "w-2", 500)).status_code == 201
    await assert_ledger_ok(referral_client, tenant)
