"""Property (§5.6, §5.8): capturing c points of a hold of p leaves the lots exactly as spending c points
first-expiring-first would have, whatever p and the lots were; the balances follow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import SyncHarness as Harness
from tests.loyalty.conftest import assert_ledger_ok, earn, put_member

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def harness(database_url: str) -> Iterator[Harness]:
    with Harness("loyalty", database_url, pool=True) as h:
        yield h


def fefo_after_spending(lots: list[tuple[int, int | None]], spent: int) -> list[int]:
    """The model: what remains of each lot (points, days to expiry or None = never) after spending
    `spent` first-expiring first, never-expiring last, ties by creation order."""
    order = sorted(range(len(lots)), key=lambda i: (lots[i][1] is None, lots[i][1] or 0, i))
    left = [points for points, _ in lots]
    for i in order:
        take = min(left[i], spent)
        left[i] -= take
        spent -= take
    return left


async def _scenario(h: Harness, lots: list[tuple[int, int | None]], hold_share: float, capture_share: float) -> None:
    client, tenant = h.client, await h.tenant()
    await put_member(client, tenant, "m1")
    lot_ids = []
    async with h.pool.acquire() as conn, conn.transaction():
        for points, days in lots:
            expires = NOW + timedelta(days=days) if days is not None else None
            lot_ids.append(await earn(conn, tenant.tenant_id, "m1", points, NOW - timedelta(days=1), expires))
    total = sum(points for points, _ in lots)
    held = max(1, int(total * hold_share))
    captured = max(1, int(held * capture_share))

    placed = await client.post("/v1/members/m1/holds", json={"hold_id": "h1", "points": held}, headers=tenant.client)
    assert placed.status_code == 201, placed.text
    done = await client.post("/v1/holds/h1/capture", json={"points": captured}, headers=tenant.client)
    assert done.status_code == 200, done.text

    async with h.pool.acquire() as conn:
        rows = await conn.fetch("SELECT lot_id, remaining FROM lots WHERE tenant_id = $1", tenant.tenant_id)
    remaining = {r["lot_id"]: r["remaining"] for r in rows}
    assert [remaining[lot_id] for lot_id in lot_ids] == fefo_after_spending(lots, captured)
    view = (await client.get("/v1/members/m1", headers=tenant.client)).json()["balances"]
    assert (view["available"], view["held"]) == (total - captured, 0)
    await assert_ledger_ok(client, tenant)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lots=st.lists(
        st.tuples(st.integers(min_value=1, max_value=500), st.one_of(st.none(), st.integers(min_value=1, max_value=5))),
        min_size=1,
        max_size=5,
    ),
    hold_share=st.floats(min_value=0.0, max_value=1.0),
    capture_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_partial_capture_spends_exactly_what_fefo_would(
    harness: Harness, lots: list[tuple[int, int | None]], hold_share: float, capture_share: float
) -> None:
    harness.run(_scenario(harness, lots, hold_share, capture_share))
