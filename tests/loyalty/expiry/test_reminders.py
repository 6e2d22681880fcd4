"""Expiry reminders (§5.6): `points.expiring` once per lot, for lots expiring within the programme's
`expiry_reminder_days` (tenant-local days), none when it is 0."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok, configure, earn, put_member
from tests.loyalty.expiry.test_expire_points import spend

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
AS_OF = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


async def remind(client: httpx.AsyncClient, tenant: TenantKeys, as_of: datetime, **options: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/jobs/send-expiry-reminders", json={"as_of": as_of.isoformat(), **options}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def expiring_events(pool: asyncpg.Pool, tenant_id: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE tenant_id = $1 AND type = 'points.expiring' ORDER BY seq", tenant_id
        )
    return [dict(r["data"]) for r in rows]


async def test_each_lot_in_the_window_is_reminded_once(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await configure(loyalty_client, tenant, expiry_reminder_days=10)
    for m in ("m1", "m2"):
        await put_member(loyalty_client, tenant, m)
    ten_days = AS_OF + timedelta(days=10)  # 11 March 12:00 in Shanghai: the window's last instant
    async with loyalty_pool.acquire() as conn, conn.transaction():
        soon = await earn(conn, t, "m1", 100, EARNED, datetime(2026, 3, 2, tzinfo=UTC))
        edge = await earn(conn, t, "m2", 40, EARNED, ten_days)
        await earn(conn, t, "m1", 50, EARNED, ten_days + timedelta(microseconds=1))  # beyond the window
        await earn(conn, t, "m1", 30, EARNED, None)  # never expires
        await earn(conn, t, "m2", 20, EARNED, AS_OF)  # due already: the sweep's, not a reminder's
        spent = await earn(conn, t, "m2", 10, EARNED, datetime(2026, 3, 1, 8, tzinfo=UTC))
        await spend(conn, t, "m2", 30, "r1")  # the AS_OF lot and the `spent` lot: nothing left to remind
        await earn(conn, t, "m1", 5, EARNED, datetime(2026, 3, 5, tzinfo=UTC))
    assert spent

    first = await remind(loyalty_client, tenant, AS_OF, batch_size=2)
    assert (first["processed"], first["batches"]) == (3, 2)
    events = await expiring_events(loyalty_pool, t)
    assert [(e["member_id"], e["lot_id"], e["points"], e["last_day"]) for e in events[:1]] == [
        ("m1", soon, 100, "2026-03-02")  # expires 2 March 00:00 UTC = 08:00 Shanghai: usable all 2 March
    ]
    assert [(e["lot_id"], e["points"], e["last_day"]) for e in events if e["lot_id"] == edge] == [
        (edge, 40, str(date(2026, 3, 11)))  # expires at noon on 11 March: usable that morning
    ]
    assert datetime.fromisoformat(events[0]["expires_at"]) == datetime(2026, 3, 2, tzinfo=UTC)
    assert len(events) == 3

    again = await remind(loyalty_client, tenant, AS_OF + timedelta(days=1))
    assert again["processed"] == 1  # only the lot that entered the window a day later
    assert len(await expiring_events(loyalty_pool, t)) == 4
    assert (await remind(loyalty_client, tenant, AS_OF + timedelta(days=1)))["processed"] == 0
    async with loyalty_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM expiry_reminders WHERE tenant_id = $1", t) == 4
    await assert_ledger_ok(loyalty_client, tenant)


async def test_no_reminders_when_the_programme_says_zero_days(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await configure(loyalty_client, tenant, expiry_reminder_days=0)
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn, conn.transaction():
        await earn(conn, t, "m1", 100, EARNED, AS_OF + timedelta(hours=1))
    assert (await remind(loyalty_client, tenant, AS_OF))["processed"] == 0
    assert await expiring_events(loyalty_pool, t) == []
    await assert_ledger_ok(loyalty_client, tenant)


async def test_an_unconfigured_programme_reminds_thirty_days_ahead(loyalty_client, loyalty_pool, tenant) -> None:
    t = tenant.tenant_id
    await put_member(loyalty_client, tenant, "m1")
    async with loyalty_pool.acquire() as conn, conn.transaction():
        inside = await earn(conn, t, "m1", 100, EARNED, AS_OF + timedelta(days=30))
        await earn(conn, t, "m1", 100, EARNED, AS_OF + timedelta(days=30, seconds=1))
    assert (await remind(loyalty_client, tenant, AS_OF))["processed"] == 1
    assert [e["lot_id"] for e in await expiring_events(loyalty_pool, t)] == [inside]
    await assert_ledger_ok(loyalty_client, tenant)
