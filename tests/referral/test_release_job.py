"""The release job (§8): due frozen commission moves to available, once, in restartable batches."""

from __future__ import annotations

import uuid

from ops.cli import provision
from shared.tenants import TenantIn
from tests.conftest import TenantKeys
from tests.referral.conftest import assert_ledger_ok
from tests.referral.test_orders import (
    RELEASE_AT,
    chain,
    commission,
    count_entries,
    order_body,
    place,
    referral_db,
    run_release,
)


async def test_nothing_is_released_before_its_time_and_everything_at_it(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999)))

    early = await run_release(referral_client, tenant, "2026-03-08T01:59:59Z")
    assert (early["processed"], early["status"]) == (0, "completed")
    assert (await commission(referral_client, tenant, "B"))["frozen"] == 999

    due = await run_release(referral_client, tenant, RELEASE_AT)
    assert due["processed"] == 2
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 0,
        "available": 999,
        "withdrawing": 0,
        "debt": 0,
    }
    assert await commission(referral_client, tenant, "A") == {
        "frozen": 0,
        "available": 499,
        "withdrawing": 0,
        "debt": 0,
    }
    view = (await referral_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert {(r["state"], r["released_at"]) for r in view["items"][0]["commissions"]} == {("released", RELEASE_AT)}
    await assert_ledger_ok(referral_client, tenant)


async def test_a_second_run_posts_nothing(referral_client, tenant, database_url) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    await place(referral_client, tenant, order_body("o-1", "C", ("sku-1", 9999), ("sku-2", 100)))
    first = await run_release(referral_client, tenant, "2026-04-01T00:00:00Z")
    entries = await count_entries(database_url, tenant, "commission.release")
    balances = await commission(referral_client, tenant, "B"), await commission(referral_client, tenant, "A")

    second = await run_release(referral_client, tenant, "2026-04-01T00:00:00Z")
    assert first["processed"] == 4 and entries == 4  # one entry per (item, level)
    assert second["processed"] == 0
    assert await count_entries(database_url, tenant, "commission.release") == 4
    assert (await commission(referral_client, tenant, "B"), await commission(referral_client, tenant, "A")) == balances
    await assert_ledger_ok(referral_client, tenant)


async def test_a_run_killed_between_batches_resumes_without_doubling(referral_client, tenant, database_url) -> None:
    await chain(referral_client, tenant, "A", "B", "C")
    for n in range(3):  # 3 orders × 2 levels = 6 due rows
        await place(referral_client, tenant, order_body(f"o-{n}", "C", ("sku-1", 1000 * (n + 1))))

    stopped = await run_release(referral_client, tenant, RELEASE_AT, batch_size=2, max_batches=1)
    assert (stopped["status"], stopped["processed"], stopped["batches"]) == ("stopped", 2, 1)
    assert await count_entries(database_url, tenant, "commission.release") == 2
    await assert_ledger_ok(referral_client, tenant)

    resumed = await run_release(referral_client, tenant, RELEASE_AT, batch_size=2)
    assert (resumed["status"], resumed["processed"]) == ("completed", 4)
    assert await count_entries(database_url, tenant, "commission.release") == 6
    async with referral_db(database_url) as conn:
        keys = await conn.fetch(
            "SELECT idempotency_key FROM entries WHERE tenant_id = $1 AND kind = 'commission.release'",
            tenant.tenant_id,
        )
    assert len({k["idempotency_key"] for k in keys}) == 6
    assert await commission(referral_client, tenant, "B") == {
        "frozen": 0,
        "available": 600,
        "withdrawing": 0,
        "debt": 0,
    }
    assert await commission(referral_client, tenant, "A") == {
        "frozen": 0,
        "available": 300,
        "withdrawing": 0,
        "debt": 0,
    }
    await assert_ledger_ok(referral_client, tenant)


async def test_frozen_commission_of_a_suspended_member_still_matures(referral_client, tenant) -> None:
    await chain(referral_client, tenant, "A", "B")
    await place(referral_client, tenant, order_body("o-1", "B", ("sku-1", 1000)))
    response = await referral_client.put("/v1/distributors/A", json={"status": "suspended"}, headers=tenant.admin)
    assert response.status_code == 200, response.text
    await run_release(referral_client, tenant, RELEASE_AT)
    assert (await commission(referral_client, tenant, "A"))["available"] == 100
    await assert_ledger_ok(referral_client, tenant)


async def test_verify_reports_commission_rows_that_disagree_with_the_ledger(referral_client, database_url) -> None:
    """A throwaway tenant whose commission row was written behind the ledger's back."""
    tenant_id = "t" + uuid.uuid4().hex[:12]
    keys = await provision(database_url, tenant_id, TenantIn(name=tenant_id), {"admin": ["admin", "client"]})
    broken = TenantKeys(tenant_id, keys["admin"], keys["admin"])
    await chain(referral_client, broken, "A", "B")
    await place(referral_client, broken, order_body("o-1", "B", ("sku-1", 1000)))
    async with referral_db(database_url) as conn:
        await conn.execute(
            "UPDATE commission_items SET amount = amount + 1, reversed_amount = 0 WHERE tenant_id = $1", tenant_id
        )
    report = (await referral_client.get("/v1/ledger/verify", headers=broken.admin)).json()
    assert not report["ok"]
    assert {v["invariant"] for v in report["violations"]} == {
        "9a-frozen-rows-equal-frozen-account",
        "9c-commission-rows-consistent",
    }
    assert {v["subject"] for v in report["violations"]} == {"member A", "commission o-1/sku-1/L1"}
