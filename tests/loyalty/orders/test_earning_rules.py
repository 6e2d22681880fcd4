"""Earning rules (§5.4): PUT/GET, category multipliers, fixed points per unit, caps per order and per
member per tenant-local day, validity windows."""

from __future__ import annotations

from typing import Any

from tests.loyalty.conftest import assert_ledger_ok, put_member
from tests.loyalty.orders.conftest import order_body, place


async def put_rule(client, tenant, code: str, **body: Any) -> dict[str, Any]:
    response = await client.put(f"/v1/earning-rules/{code}", json={"name": code, **body}, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def item(item_id: str, amount: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"item_id": item_id, "amount": amount, "quantity": quantity, **extra}


async def test_rules_are_created_replaced_and_listed(loyalty_client, tenant) -> None:
    body = {"name": "Shoes x2", "kind": "multiplier", "multiplier_bps": 20_000, "condition": {"categories": ["shoes"]}}
    created = await loyalty_client.put("/v1/earning-rules/shoes", json=body, headers=tenant.admin)
    assert created.status_code == 201, created.text
    assert created.json()["condition"] == {"categories": ["shoes"], "skus": []}
    same = await loyalty_client.put("/v1/earning-rules/shoes", json=body, headers=tenant.admin)
    assert (same.status_code, same.json()["version"]) == (200, 1)
    changed = await loyalty_client.put(
        "/v1/earning-rules/shoes", json=body | {"cap_per_order": 100}, headers=tenant.admin
    )
    assert (changed.status_code, changed.json()["version"], changed.json()["cap_per_order"]) == (200, 2, 100)
    for code in ("a", "b"):
        await put_rule(loyalty_client, tenant, code, kind="fixed_per_unit", points_per_unit=1)

    first = (await loyalty_client.get("/v1/earning-rules?limit=2", headers=tenant.client)).json()
    assert [r["code"] for r in first["items"]] == ["a", "b"]
    rest = await loyalty_client.get(f"/v1/earning-rules?limit=2&cursor={first['next_cursor']}", headers=tenant.client)
    assert [r["code"] for r in rest.json()["items"]] == ["shoes"] and rest.json()["next_cursor"] is None
    bad = await loyalty_client.get("/v1/earning-rules?cursor=nonsense", headers=tenant.client)
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid-cursor")
    await assert_ledger_ok(loyalty_client, tenant)


async def test_invalid_rules_are_refused(loyalty_client, tenant) -> None:
    cases = [
        ({"kind": "multiplier"}, 422, "invalid-rule"),
        ({"kind": "multiplier", "multiplier_bps": 20_000, "points_per_unit": 1}, 422, "invalid-rule"),
        ({"kind": "fixed_per_unit", "points_per_unit": -1}, 422, "invalid-rule"),
        ({"kind": "fixed_per_unit", "points_per_unit": 1, "cap_per_order": -1}, 422, "invalid-rule"),
        ({"kind": "fixed_per_unit", "points_per_unit": 1, "condition": {"skus": [""]}}, 422, "invalid-rule"),
        (
            {
                "kind": "fixed_per_unit",
                "points_per_unit": 1,
                "valid_from": "2026-03-02T00:00:00Z",
                "valid_until": "2026-03-01T00:00:00Z",
            },
            422,
            "invalid-window",
        ),
    ]
    for body, status, problem in cases:
        response = await loyalty_client.put("/v1/earning-rules/r", json={"name": "r", **body}, headers=tenant.admin)
        assert (response.status_code, response.json()["type"]) == (status, problem), body
    ok = {"name": "r", "kind": "fixed_per_unit", "points_per_unit": 1}
    assert (await loyalty_client.put("/v1/earning-rules/r", json=ok, headers=tenant.client)).status_code == 403
    assert (await loyalty_client.get("/v1/earning-rules", headers=tenant.client)).json()["items"] == []


async def test_a_category_multiplier_scales_the_matching_items(loyalty_client, tenant) -> None:
    await put_rule(
        loyalty_client, tenant, "shoes", kind="multiplier", multiplier_bps=20_000, condition={"categories": ["shoes"]}
    )
    await put_member(loyalty_client, tenant, "m1")
    order = await place(
        loyalty_client,
        tenant,
        order_body("o-1", "m1", item("shoe", 10_000, category="shoes"), item("shirt", 5_000, category="tops")),
    )
    assert order["points"] == 250
    assert {i["item_id"]: (i["points"], i["rule_codes"]) for i in order["items"]} == {
        "shoe": (200, ["shoes"]),
        "shirt": (50, []),
    }
    await assert_ledger_ok(loyalty_client, tenant)


async def test_fixed_points_per_unit_by_sku(loyalty_client, tenant) -> None:
    await put_rule(
        loyalty_client, tenant, "promo", kind="fixed_per_unit", points_per_unit=5, condition={"skus": ["s1"]}
    )
    await put_member(loyalty_client, tenant, "m1")
    order = await place(
        loyalty_client,
        tenant,
        order_body("o-1", "m1", item("a", 1_000, 3, sku="s1"), item("b", 1_000, 3, sku="s2")),
    )
    assert {i["item_id"]: i["points"] for i in order["items"]} == {"a": 25, "b": 10}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_cap_per_order_limits_what_a_rule_adds(loyalty_client, tenant) -> None:
    await put_rule(loyalty_client, tenant, "triple", kind="multiplier", multiplier_bps=30_000, cap_per_order=50)
    await put_member(loyalty_client, tenant, "m1")
    order = await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 6_000), ("b", 4_000)))
    assert order["points"] == 150  # 100 base + min(200, 50)
    assert {i["item_id"]: i["points"] for i in order["items"]} == {"a": 90, "b": 60}
    await assert_ledger_ok(loyalty_client, tenant)


async def test_a_cap_per_member_day_counts_the_tenant_local_day(loyalty_client, tenant) -> None:
    await put_rule(loyalty_client, tenant, "daily", kind="fixed_per_unit", points_per_unit=10, cap_per_member_day=25)
    for member in ("m1", "m2"):
        await put_member(loyalty_client, tenant, member)

    def body(order_id: str, member: str, paid_at: str) -> dict[str, Any]:
        return order_body(order_id, member, item("a", 0, 2), paid_at=paid_at)

    morning = await place(loyalty_client, tenant, body("o-1", "m1", "2026-03-01T10:00:00+08:00"))
    evening = await place(loyalty_client, tenant, body("o-2", "m1", "2026-03-01T23:30:00+08:00"))
    late = await place(loyalty_client, tenant, body("o-3", "m1", "2026-03-01T23:45:00+08:00"))
    # 00:30 in Shanghai is a new day, though still 1 March in UTC
    next_day = await place(loyalty_client, tenant, body("o-4", "m1", "2026-03-02T00:30:00+08:00"))
    other = await place(loyalty_client, tenant, body("o-5", "m2", "2026-03-01T10:00:00+08:00"))
    assert [o["points"] for o in (morning, evening, late, next_day, other)] == [20, 5, 0, 20, 20]
    await assert_ledger_ok(loyalty_client, tenant)


async def test_rules_apply_only_inside_their_window_and_while_active(loyalty_client, tenant) -> None:
    await put_rule(
        loyalty_client,
        tenant,
        "march",
        kind="fixed_per_unit",
        points_per_unit=7,
        valid_from="2026-03-01T00:00:00+08:00",
        valid_until="2026-04-01T00:00:00+08:00",
    )
    await put_rule(loyalty_client, tenant, "off", kind="fixed_per_unit", points_per_unit=100, active=False)
    await put_member(loyalty_client, tenant, "m1")
    inside = await place(loyalty_client, tenant, order_body("o-1", "m1", ("a", 0)))
    before = await place(loyalty_client, tenant, order_body("o-2", "m1", ("a", 0), paid_at="2026-02-28T23:59:59+08:00"))
    after = await place(loyalty_client, tenant, order_body("o-3", "m1", ("a", 0), paid_at="2026-04-01T00:00:00+08:00"))
    assert [o["points"] for o in (inside, before, after)] == [7, 0, 0]
    await assert_ledger_ok(loyalty_client, tenant)
