"""Withdrawals (§6.5): available → withdrawing → paid out (or back), one ledger entry per money move.

Commission reaches a member the way it does in production: A invites B, B pays an order, the release
job matures A's commission. The programme pays one level at 10 %, so an order of 10 × N pays A N fen.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from shared.ledger import balances
from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok, configure, register

PAID_AT = "2026-02-01T10:00:00+08:00"
RELEASED_AS_OF = "2026-02-09T10:00:00+08:00"  # paid_at + 7 days freeze + a day

ACTIONS = {
    "approve": {},
    "reject": {"reason": "no"},
    "complete": {"payout_ref": "pay-1"},
    "fail": {"reason": "bounced"},
}


async def program(client: httpx.AsyncClient, tenant: TenantKeys, **overrides: Any) -> None:
    rules: dict[str, Any] = {
        "depth": 1,
        "level_rates_bps": [1000],
        "min_withdrawal": 100,
        "withdrawal_fee_bps": 0,
        "auto_approve_limit": 0,
    }
    await configure(client, tenant, **(rules | overrides))


async def fund(client: httpx.AsyncClient, tenant: TenantKeys, pool: asyncpg.Pool, member: str, amount: int) -> None:
    """Register `member`, have an invitee buy 10 × amount, release: `amount` fen available."""
    before = (await money(pool, tenant, member))["available"]
    inviter = await register(client, tenant, member)
    buyer = f"{member}-buyer"
    await register(client, tenant, buyer, invite_code=inviter["invite_code"])
    order = {
        "order_id": f"order-{member}",
        "buyer_id": buyer,
        "currency": "CNY",
        "items": [{"item_id": "i1", "category": "general", "amount": amount * 10, "quantity": 1}],
        "paid_at": PAID_AT,
    }
    response = await client.post("/v1/orders", json=order, headers=tenant.admin)
    assert response.status_code == 201, response.text
    response = await client.post("/v1/jobs/release-commission", json={"as_of": RELEASED_AS_OF}, headers=tenant.admin)
    assert response.status_code == 200, response.text
    assert (await money(pool, tenant, member))["available"] == before + amount


async def money(pool: asyncpg.Pool, tenant: TenantKeys, member: str) -> dict[str, int]:
    codes = {
        "available": f"member:{member}:commission_available",
        "withdrawing": f"member:{member}:commission_withdrawing",
        "debt": f"member:{member}:commission_debt",
        "payouts": "program:payouts",
        "fees": "program:withdrawal_fees",
    }
    async with pool.acquire() as conn:
        found = await balances(conn, tenant.tenant_id, list(codes.values()))
    return {name: found[code].balance if code in found else 0 for name, code in codes.items()}


async def journal(pool: asyncpg.Pool, tenant: TenantKeys) -> dict[str, int]:
    """Withdrawal entries and events, by kind and type."""
    async with pool.acquire() as conn:
        entries = await conn.fetch(
            "SELECT kind, count(*) AS n FROM entries WHERE tenant_id = $1 AND kind LIKE 'withdrawal.%' GROUP BY kind",
            tenant.tenant_id,
        )
        events = await conn.fetch(
            "SELECT type, count(*) AS n FROM events WHERE tenant_id = $1 AND type LIKE 'withdrawal.%' GROUP BY type",
            tenant.tenant_id,
        )
    return {f"entry {r['kind']}": r["n"] for r in entries} | {f"event {r['type']}": r["n"] for r in events}


async def withdraw(
    client: httpx.AsyncClient, tenant: TenantKeys, member: str, withdrawal_id: str, amount: int, **extra: Any
) -> httpx.Response:
    body = {"withdrawal_id": withdrawal_id, "amount": amount, "channel": "alipay", "account_ref": "ann@example.com"}
    return await client.post(f"/v1/members/{member}/withdrawals", json=body | extra, headers=tenant.client)


async def act(client: httpx.AsyncClient, tenant: TenantKeys, withdrawal_id: str, action: str, **body: Any):
    return await client.post(
        f"/v1/withdrawals/{withdrawal_id}/{action}", json=body or ACTIONS[action], headers=tenant.admin
    )


async def view(client: httpx.AsyncClient, tenant: TenantKeys, withdrawal_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/withdrawals/{withdrawal_id}", headers=tenant.client)
    assert response.status_code == 200, response.text
    return response.json()


async def test_request_moves_available_to_withdrawing_with_fee(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, withdrawal_fee_bps=150)
    await fund(referral_client, tenant, pool, "ann", 1000)

    response = await withdraw(referral_client, tenant, "ann", "w1", 999, channel="bank", account_ref="6222-0001")

    assert response.status_code == 201, response.text
    body = response.json()
    # floor(999 × 150 / 10000) = floor(14.985)
    assert (body["amount"], body["fee"], body["net_amount"]) == (999, 14, 985)
    assert (body["status"], body["member_id"], body["currency"], body["channel"]) == ("requested", "ann", "CNY", "bank")
    assert body["approved_at"] is None and body["resolved_at"] is None
    assert await money(pool, tenant, "ann") == {"available": 1, "withdrawing": 999, "debt": 0, "payouts": 0, "fees": 0}
    read = await referral_client.get("/v1/withdrawals/w1", headers=tenant.client)
    assert read.json() == body and read.headers["etag"]
    listed = await referral_client.get("/v1/members/ann/withdrawals", headers=tenant.client)
    assert listed.json() == {"items": [body], "next_cursor": None}
    assert await journal(pool, tenant) == {"entry withdrawal.request": 1, "event withdrawal.requested": 1}
    await assert_ledger_ok(referral_client, tenant)


async def test_below_minimum_is_422_and_writes_nothing(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, min_withdrawal=500)
    await fund(referral_client, tenant, pool, "ann", 1000)

    refused = await withdraw(referral_client, tenant, "ann", "w1", 499)
    retried = await withdraw(referral_client, tenant, "ann", "w1", 499)

    assert refused.status_code == 422 and refused.json()["type"] == "below-minimum"
    assert refused.headers["content-type"] == "application/problem+json"
    assert (retried.status_code, retried.content) == (422, refused.content)  # a refusal stays refused
    assert (await referral_client.get("/v1/withdrawals/w1", headers=tenant.client)).status_code == 404
    assert (await referral_client.get("/v1/members/ann/withdrawals", headers=tenant.client)).json()["items"] == []
    assert await money(pool, tenant, "ann") == {"available": 1000, "withdrawing": 0, "debt": 0, "payouts": 0, "fees": 0}
    assert await journal(pool, tenant) == {}
    assert (await withdraw(referral_client, tenant, "ann", "w2", 500)).status_code == 201
    await assert_ledger_ok(referral_client, tenant)


async def test_more_than_available_is_409_and_writes_nothing(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)

    refused = await withdraw(referral_client, tenant, "ann", "w1", 1001)

    assert refused.status_code == 409 and refused.json()["type"] == "insufficient-balance"
    assert (await referral_client.get("/v1/withdrawals/w1", headers=tenant.client)).status_code == 404
    assert await money(pool, tenant, "ann") == {"available": 1000, "withdrawing": 0, "debt": 0, "payouts": 0, "fees": 0}
    assert await journal(pool, tenant) == {}
    assert (await withdraw(referral_client, tenant, "ann", "w2", 1000)).status_code == 201
    assert (await money(pool, tenant, "ann"))["available"] == 0
    await assert_ledger_ok(referral_client, tenant)


async def test_unknown_member_and_unknown_withdrawal_are_404(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)

    response = await withdraw(referral_client, tenant, "nobody", "w1", 100)
    assert response.status_code == 404 and response.json()["type"] == "member-not-found"
    listed = await referral_client.get("/v1/members/nobody/withdrawals", headers=tenant.client)
    assert listed.status_code == 404 and listed.json()["type"] == "member-not-found"
    for action in ACTIONS:
        response = await act(referral_client, tenant, "w-none", action)
        assert response.status_code == 404 and response.json()["type"] == "withdrawal-not-found"
    await assert_ledger_ok(referral_client, tenant)


async def test_auto_approve_limit(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, auto_approve_limit=300)
    await fund(referral_client, tenant, pool, "ann", 1000)

    at_limit = await withdraw(referral_client, tenant, "ann", "w1", 300)
    above = await withdraw(referral_client, tenant, "ann", "w2", 301)

    assert at_limit.status_code == above.status_code == 201
    assert at_limit.json()["status"] == "approved" and at_limit.json()["approved_at"] is not None
    assert above.json()["status"] == "requested" and above.json()["approved_at"] is None
    # an approved withdrawal can be paid at once; the one above the limit waits for approval
    assert (await act(referral_client, tenant, "w1", "complete")).status_code == 200
    waiting = await act(referral_client, tenant, "w2", "complete")
    assert waiting.status_code == 409 and waiting.json()["type"] == "invalid-transition"
    assert await journal(pool, tenant) == {
        "entry withdrawal.request": 2,
        "entry withdrawal.complete": 1,
        "event withdrawal.requested": 2,
        "event withdrawal.approved": 1,
        "event withdrawal.completed": 1,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_auto_approve_limit_zero_means_every_withdrawal_waits(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, auto_approve_limit=0, min_withdrawal=1)
    await fund(referral_client, tenant, pool, "ann", 1000)

    response = await withdraw(referral_client, tenant, "ann", "w1", 1)

    assert response.status_code == 201 and response.json()["status"] == "requested"
    await assert_ledger_ok(referral_client, tenant)


async def _one_in_each_state(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    """w-requested, w-approved, w-completed, w-rejected, w-failed: 100 fen each, with the ACTIONS bodies."""
    paths = {
        "requested": [],
        "approved": ["approve"],
        "completed": ["approve", "complete"],
        "rejected": ["reject"],
        "failed": ["approve", "fail"],
    }
    for state, steps in paths.items():
        assert (await withdraw(client, tenant, "ann", f"w-{state}", 100)).status_code == 201
        for action in steps:
            response = await act(client, tenant, f"w-{state}", action)
            assert response.status_code == 200, response.text
        assert (await view(client, tenant, f"w-{state}"))["status"] == state


# (state, action) -> what happens: a legal move, a no-op replay of the move that led there, or 409
LEGAL = {("requested", "approve"), ("requested", "reject"), ("approved", "reject")}
LEGAL |= {("approved", "complete"), ("approved", "fail")}
REPLAY = {("approved", "approve"), ("completed", "complete"), ("rejected", "reject"), ("failed", "fail")}
STATES = ("requested", "approved", "completed", "rejected", "failed")


async def test_every_illegal_transition_is_409_and_changes_nothing(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await _one_in_each_state(referral_client, tenant)
    views = {state: await view(referral_client, tenant, f"w-{state}") for state in STATES}
    balances_before, journal_before = await money(pool, tenant, "ann"), await journal(pool, tenant)
    assert balances_before == {"available": 700, "withdrawing": 200, "debt": 0, "payouts": 100, "fees": 0}

    illegal = [(s, a, ACTIONS[a]) for s in STATES for a in ACTIONS if (s, a) not in LEGAL | REPLAY]
    # the transition that led to a state, repeated with another body, is not a replay either
    illegal += [
        ("completed", "complete", {"payout_ref": "pay-2"}),
        ("rejected", "reject", {"reason": "another reason"}),
        ("failed", "fail", {"reason": "another reason"}),
    ]
    assert len(illegal) == 2 + 0 + 3 + 3 + 3 + 3
    for state, action, body in illegal:
        response = await act(referral_client, tenant, f"w-{state}", action, **body)
        assert response.status_code == 409, (state, action, response.text)
        assert response.json()["type"] == "invalid-transition"
        assert await view(referral_client, tenant, f"w-{state}") == views[state]

    for state, action in sorted(REPLAY):
        response = await act(referral_client, tenant, f"w-{state}", action)
        assert response.status_code == 200 and response.headers["idempotent-replayed"] == "true"
        assert response.json() == views[state]
    assert await money(pool, tenant, "ann") == balances_before
    assert await journal(pool, tenant) == journal_before
    await assert_ledger_ok(referral_client, tenant)


async def test_legal_transitions_from_each_state(referral_client, tenant, pool) -> None:
    """The other half of the table: each legal (state, action) pair moves to its target."""
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    targets = {"approve": "approved", "reject": "rejected", "complete": "completed", "fail": "failed"}
    for n, (state, action) in enumerate(sorted(LEGAL)):
        withdrawal_id = f"w{n}"
        assert (await withdraw(referral_client, tenant, "ann", withdrawal_id, 100)).status_code == 201
        if state == "approved":
            assert (await act(referral_client, tenant, withdrawal_id, "approve")).status_code == 200
        response = await act(referral_client, tenant, withdrawal_id, action)
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers
        assert response.json()["status"] == targets[action]
    # 5 × 100 requested; rejected twice and failed once came back; completed once paid out
    assert await money(pool, tenant, "ann") == {
        "available": 800,
        "withdrawing": 100,
        "debt": 0,
        "payouts": 100,
        "fees": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_complete_refused_while_requested_succeeds_after_approval(referral_client, tenant, pool) -> None:
    """Refused transitions are not pinned: the state machine decides each call from the current status."""
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 400)

    early = await act(referral_client, tenant, "w1", "complete")
    approved = await act(referral_client, tenant, "w1", "approve")
    completed = await act(referral_client, tenant, "w1", "complete")

    assert early.status_code == 409 and early.json()["type"] == "invalid-transition"
    assert approved.status_code == 200 and approved.json()["approved_at"] is not None
    assert completed.status_code == 200 and completed.json()["status"] == "completed"
    assert completed.json()["payout_ref"] == "pay-1" and completed.json()["resolved_at"] is not None
    assert await money(pool, tenant, "ann") == {
        "available": 600,
        "withdrawing": 0,
        "debt": 0,
        "payouts": 400,
        "fees": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_same_transition_twice_is_a_noop(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, withdrawal_fee_bps=100)
    await fund(referral_client, tenant, pool, "ann", 1000)
    for withdrawal_id in ("w-paid", "w-rejected", "w-failed"):
        await withdraw(referral_client, tenant, "ann", withdrawal_id, 200)

    sequences = {"w-paid": ["approve", "complete"], "w-rejected": ["reject"], "w-failed": ["approve", "fail"]}
    for withdrawal_id, actions in sequences.items():
        for action in actions:
            first = await act(referral_client, tenant, withdrawal_id, action)
            # a duplicate callback, also concurrent with another: the row lock queues them
            again = await asyncio.gather(*(act(referral_client, tenant, withdrawal_id, action) for _ in range(3)))
            assert first.status_code == 200 and "idempotent-replayed" not in first.headers
            assert [r.status_code for r in again] == [200] * 3
            assert all(r.headers["idempotent-replayed"] == "true" and r.json() == first.json() for r in again)

    assert await journal(pool, tenant) == {
        "entry withdrawal.request": 3,
        "entry withdrawal.complete": 1,
        "entry withdrawal.reject": 1,
        "entry withdrawal.fail": 1,
        "event withdrawal.requested": 3,
        "event withdrawal.approved": 2,
        "event withdrawal.completed": 1,
        "event withdrawal.rejected": 1,
        "event withdrawal.failed": 1,
    }
    # 200 paid (fee 2, net 198); 400 back to available
    assert await money(pool, tenant, "ann") == {
        "available": 800,
        "withdrawing": 0,
        "debt": 0,
        "payouts": 198,
        "fees": 2,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_reject_and_fail_recredit_available(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, withdrawal_fee_bps=500)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w-reject-requested", 300)
    await withdraw(referral_client, tenant, "ann", "w-reject-approved", 300)
    await withdraw(referral_client, tenant, "ann", "w-fail", 400)
    assert (await money(pool, tenant, "ann"))["available"] == 0

    rejected = await act(referral_client, tenant, "w-reject-requested", "reject", reason="account closed")
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"] == "account closed"
    assert (await money(pool, tenant, "ann"))["available"] == 300
    await act(referral_client, tenant, "w-reject-approved", "approve")
    await act(referral_client, tenant, "w-reject-approved", "reject")
    assert (await money(pool, tenant, "ann"))["available"] == 600
    await act(referral_client, tenant, "w-fail", "approve")
    failed = await act(referral_client, tenant, "w-fail", "fail", reason="card bounced")
    assert failed.json()["status"] == "failed" and failed.json()["reason"] == "card bounced"

    # the whole amount comes back: no fee is kept on money that was never paid out
    assert await money(pool, tenant, "ann") == {"available": 1000, "withdrawing": 0, "debt": 0, "payouts": 0, "fees": 0}
    assert (await withdraw(referral_client, tenant, "ann", "w-again", 1000)).status_code == 201
    await assert_ledger_ok(referral_client, tenant)


async def test_complete_pays_net_to_payouts_and_fee_to_fees(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, withdrawal_fee_bps=250, auto_approve_limit=1000)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 999)

    response = await act(referral_client, tenant, "w1", "complete", payout_ref="alipay-2026-0001")

    assert response.status_code == 200
    assert (response.json()["fee"], response.json()["net_amount"]) == (24, 975)  # floor(999 × 2.5 %)
    assert await money(pool, tenant, "ann") == {"available": 1, "withdrawing": 0, "debt": 0, "payouts": 975, "fees": 24}
    member = (await referral_client.get("/v1/members/ann", headers=tenant.client)).json()
    assert member["balances"] == {
        "currency": "CNY",
        "frozen": 0,
        "available": 1,
        "withdrawing": 0,
        "withdrawn": 999,
        "debt": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_complete_without_fee_has_no_fee_leg(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant, withdrawal_fee_bps=0, auto_approve_limit=1000)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 500)

    assert (await act(referral_client, tenant, "w1", "complete")).status_code == 200

    async with pool.acquire() as conn:
        legs = await conn.fetchval(
            "SELECT count(*) FROM postings p JOIN entries e USING (tenant_id, entry_id)"
            " WHERE e.tenant_id = $1 AND e.idempotency_key = 'withdrawal:w1:complete'",
            tenant.tenant_id,
        )
    assert legs == 2
    assert await money(pool, tenant, "ann") == {
        "available": 500,
        "withdrawing": 0,
        "debt": 0,
        "payouts": 500,
        "fees": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_concurrent_requests_never_overdraw(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)

    responses = await asyncio.gather(*(withdraw(referral_client, tenant, "ann", f"w{n}", 100) for n in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [409] * 10, [r.text for r in responses]
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"insufficient-balance"}
    assert await money(pool, tenant, "ann") == {"available": 0, "withdrawing": 1000, "debt": 0, "payouts": 0, "fees": 0}
    listed = await referral_client.get("/v1/members/ann/withdrawals?limit=200", headers=tenant.client)
    assert len(listed.json()["items"]) == 10
    await assert_ledger_ok(referral_client, tenant)


async def test_idempotent_replay_and_conflict(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await fund(referral_client, tenant, pool, "bob", 1000)

    first = await withdraw(referral_client, tenant, "ann", "w1", 300)
    replay = await withdraw(referral_client, tenant, "ann", "w1", 300)
    other_amount = await withdraw(referral_client, tenant, "ann", "w1", 301)
    other_member = await withdraw(referral_client, tenant, "bob", "w1", 300)

    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert (replay.status_code, replay.content) == (201, first.content)
    assert replay.headers["idempotent-replayed"] == "true"
    for conflict in (other_amount, other_member):
        assert conflict.status_code == 409 and conflict.json()["type"] == "idempotency-conflict"
    assert (await money(pool, tenant, "ann"))["available"] == 700
    assert (await money(pool, tenant, "bob"))["available"] == 1000
    assert await journal(pool, tenant) == {"entry withdrawal.request": 1, "event withdrawal.requested": 1}
    await assert_ledger_ok(referral_client, tenant)


async def test_list_is_newest_first_with_cursor_and_status(referral_client, tenant, pool) -> None:
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    for n in range(5):
        assert (await withdraw(referral_client, tenant, "ann", f"w{n}", 100)).status_code == 201
    await act(referral_client, tenant, "w1", "reject")
    await act(referral_client, tenant, "w3", "reject")

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await referral_client.get("/v1/members/ann/withdrawals", params=params, headers=tenant.client)).json()
        assert len(page["items"]) <= 2
        seen += [item["withdrawal_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["w4", "w3", "w2", "w1", "w0"]
    rejected = await referral_client.get("/v1/members/ann/withdrawals?status=rejected", headers=tenant.client)
    assert [item["withdrawal_id"] for item in rejected.json()["items"]] == ["w3", "w1"]
    bad = await referral_client.get("/v1/members/ann/withdrawals?cursor=nonsense", headers=tenant.client)
    assert bad.status_code == 400 and bad.json()["type"] == "invalid-cursor"
    await assert_ledger_ok(referral_client, tenant)


async def test_scopes_and_tenants(referral_client, tenant, pool, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 100)

    for action, body in ACTIONS.items():
        response = await referral_client.post(f"/v1/withdrawals/w1/{action}", json=body, headers=tenant.client)
        assert response.status_code == 403, action
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="x"), {"a": ["admin", "client"]})
    stranger = {"Authorization": f"Bearer {keys['a']}"}
    assert (await referral_client.get("/v1/withdrawals/w1", headers=stranger)).status_code == 404
    assert (await referral_client.post("/v1/withdrawals/w1/approve", json={}, headers=stranger)).status_code == 404
    assert (await referral_client.get("/v1/members/ann/withdrawals", headers=stranger)).status_code == 404
    assert (await view(referral_client, tenant, "w1"))["status"] == "requested"
    await assert_ledger_ok(referral_client, tenant)


async def test_open_debt_blocks_withdrawals(referral_client, tenant, pool) -> None:
    """A refund after release and payout claws back into debt; while it is open nothing is withdrawn."""
    await program(referral_client, tenant, auto_approve_limit=1000)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 1000)
    await act(referral_client, tenant, "w1", "complete")
    refund = {"refund_id": "r1", "items": [{"item_id": "i1", "amount": 10_000}]}
    response = await referral_client.post("/v1/orders/order-ann/refunds", json=refund, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    assert (await money(pool, tenant, "ann"))["debt"] == 1000
    await fund(referral_client, tenant, pool, "ann2", 500)  # another member is not blocked

    blocked = await withdraw(referral_client, tenant, "ann", "w2", 100)

    assert blocked.status_code == 409 and blocked.json()["type"] == "open-debt"
    assert (await withdraw(referral_client, tenant, "ann2", "w3", 500)).status_code == 201
    assert (await money(pool, tenant, "ann"))["withdrawing"] == 0
    await assert_ledger_ok(referral_client, tenant)


async def test_verify_reports_a_withdrawal_row_that_disagrees_with_the_journal(referral_client, tenant, pool) -> None:
    """The withdrawal checks in `ledger verify` see a status changed behind the ledger's back."""
    await program(referral_client, tenant)
    await fund(referral_client, tenant, pool, "ann", 1000)
    await withdraw(referral_client, tenant, "ann", "w1", 400)
    await assert_ledger_ok(referral_client, tenant)

    async with pool.acquire() as conn:  # the table is not append-only; only the journal is
        await conn.execute(
            "UPDATE withdrawals SET status = 'rejected' WHERE tenant_id = $1 AND withdrawal_id = 'w1'", tenant.tenant_id
        )
    report = (await referral_client.get("/v1/ledger/verify", headers=tenant.admin)).json()

    assert not report["ok"]
    found = {v["invariant"] for v in report["violations"]}
    assert {"9w1-withdrawing-equals-open-withdrawals", "9w2-withdrawal-entries-match-status"} <= found
