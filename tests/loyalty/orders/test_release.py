"""The release job (§8): pending points become available at paid_at + pending days, once, in a lot whose
expiry comes from paid_at, in restartable batches."""

from __future__ import annotations

from tests.loyalty.conftest import assert_ledger_ok, configure, put_member
from tests.loyalty.orders.conftest import (
    RELEASE_AT,
    balances,
    entries,
    events,
    order_body,
    place,
    run_release,
)


async def _lots(pool, tenant, member_id: str) -> list[tuple[int, int, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT amount, remaining, earned_at, expires_at FROM lots WHERE tenant_id = $1 AND member_id = $2"
            " ORDER BY lot_id",
            tenant.tenant_id,
            member_id,
        )
    return [(r["amount"], r["remaining"], r["earned_at"].isoformat(), r["expires_at"].isoformat()) for r in rows]


async def test_points_wait_until_paid_at_plus_pending_days_then_become_a_lot_from_paid_at(
    loyalty_client, loyalty_pool, tenant
) -> None:
    await configure(loyalty_client, tenant, expiry={"kind": "rolling_days", "n": 30})
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 10_000)))

    early = await run_release(loyalty_client, tenant, "2026-03-08T01:59:59Z")
    assert (early["processed"], early["status"]) == (0, "completed")
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 100, "held": 0, "debt": 0}

    due = await run_release(loyalty_client, tenant, RELEASE_AT)
    assert due["processed"] == 1
    assert await balances(loyalty_client, tenant, "m1") == {"available": 100, "pending": 0, "held": 0, "debt": 0}
    # 30 days from paid_at (2026-03-01 10:00 +08:00), not from the release
    assert await _lots(loyalty_pool, tenant, "m1") == [
        (100, 100, "2026-03-01T02:00:00+00:00", "2026-03-31T02:00:00+00:00")
    ]
    view = (await loyalty_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert (view["state"], view["released_at"]) == ("released", RELEASE_AT)
    (released,) = await events(loyalty_pool, tenant, "points.released")
    assert (released["order_id"], released["points"], released["available"]) == ("o-1", 100, 100)
    await assert_ledger_ok(loyalty_client, tenant)


async def test_the_expiry_policy_in_force_at_payment_applies(loyalty_client, loyalty_pool, tenant) -> None:
    await configure(loyalty_client, tenant, expiry={"kind": "rolling_days", "n": 30})
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 1000)))
    await configure(loyalty_client, tenant, expiry={"kind": "never"})
    await run_release(loyalty_client, tenant, RELEASE_AT)
    assert [lot[3] for lot in await _lots(loyalty_pool, tenant, "m1")] == ["2026-03-31T02:00:00+00:00"]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_second_run_posts_nothing(loyalty_client, loyalty_pool, tenant) -> None:
    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 1000)))
    await place(loyalty_client, tenant, order_body("o-2", "m1", ("a", 2000)))
    first = await run_release(loyalty_client, tenant, "2026-04-01T00:00:00Z")
    second = await run_release(loyalty_client, tenant, "2026-04-01T00:00:00Z")
    assert (first["processed"], second["processed"]) == (2, 0)
    assert await entries(loyalty_pool, tenant, "points.release") == ["release:o-1", "release:o-2"]
    assert await balances(loyalty_client, tenant, "m1") == {"available": 30, "pending": 0, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_run_killed_between_batches_resumes_without_doubling_or_skipping(
    loyalty_client, loyalty_pool, tenant
) -> None:
    for member in ("m1", "m2"):
        await put_member(loyalty_client, tenant, member)
    for n in range(5):
        await place(loyalty_client, tenant, order_body(f"o-{n}", f"m{n % 2 + 1}", ("a", 100 * (n + 1))))

    stopped = await run_release(loyalty_client, tenant, RELEASE_AT, batch_size=2, max_batches=1)
    assert (stopped["status"], stopped["processed"], stopped["batches"]) == ("stopped", 2, 1)
    assert len(await entries(loyalty_pool, tenant, "points.release")) == 2
    await assert_ledger_ok(loyalty_client, tenant)

    resumed = await run_release(loyalty_client, tenant, RELEASE_AT, batch_size=2)
    assert (resumed["status"], resumed["processed"]) == ("completed", 3)
    assert sorted(await entries(loyalty_pool, tenant, "points.release")) == [f"release:o-{n}" for n in range(5)]
    # m1: orders 0, 2, 4 (1 + 3 + 5 points); m2: orders 1, 3 (2 + 4)
    assert (await balances(loyalty_client, tenant, "m1"))["available"] == 9
    assert (await balances(loyalty_client, tenant, "m2"))["available"] == 6
    await assert_ledger_ok(loyalty_client, tenant)


async def test_an_order_refunded_in_full_while_pending_is_released_without_an_entry(
    loyalty_client, loyalty_pool, tenant
) -> None:
    from tests.loyalty.orders.conftest import refund

    await put_member(loyalty_client, tenant, "m1")
    await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 1000)))
    assert (await refund(loyalty_client, tenant, "o-1", "r-1", ("a", 1000))).status_code == 201
    assert (await run_release(loyalty_client, tenant, RELEASE_AT))["processed"] == 1
    view = (await loyalty_client.get("/v1/orders/o-1", headers=tenant.client)).json()
    assert (view["state"], view["points"], view["reversed_points"]) == ("released", 10, 10)
    assert await entries(loyalty_pool, tenant, "points.release") == []
    assert await balances(loyalty_client, tenant, "m1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    await assert_ledger_ok(loyalty_client, tenant)
