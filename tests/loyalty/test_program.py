"""Programme configuration (§5.1): every field's default, policy validation, ETag and If-Match."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.loyalty.conftest import assert_ledger_ok


async def _put(client: httpx.AsyncClient, tenant: TenantKeys, body: dict, **headers: str) -> httpx.Response:
    return await client.put("/v1/program", json=body, headers={**tenant.admin, **headers})


async def test_a_new_tenant_runs_on_the_defaults(loyalty_client, tenant) -> None:
    response = await loyalty_client.get("/v1/program", headers=tenant.admin)
    assert response.status_code == 200
    program = response.json()
    assert program["version"] == 0 and response.headers["etag"] == '"program-0"'
    assert program["config"] == {
        "earn_points": 1,
        "earn_per_amount": 100,
        "pending_days": 7,
        "expiry": {"kind": "end_of_month_after", "n": 12},
        "tier_window": {"kind": "rolling_days", "n": 365},
        "downgrade_mode": "one_down",
        "downgrade_grace_days": 30,
        "negative_balance": "debt",
        "max_points_share_bps": 10000,
        "money_points": 100,
        "money_amount": 100,
        "expiry_reminder_days": 30,
    }
    await assert_ledger_ok(loyalty_client, tenant)


async def test_every_field_is_stored(loyalty_client, tenant) -> None:
    body = {
        "earn_points": 3,
        "earn_per_amount": 1000,
        "pending_days": 0,
        "expiry": {"kind": "rolling_days", "n": 90},
        "tier_window": {"kind": "calendar_year"},
        "downgrade_mode": "to_qualified",
        "downgrade_grace_days": 0,
        "negative_balance": "cap",
        "max_points_share_bps": 5000,
        "money_points": 50,
        "money_amount": 100,
        "expiry_reminder_days": 7,
    }
    response = await _put(loyalty_client, tenant, body)
    assert response.status_code == 200, response.text
    stored = (await loyalty_client.get("/v1/program", headers=tenant.admin)).json()
    assert stored["version"] == 1
    assert stored["config"] == {**body, "tier_window": {"kind": "calendar_year", "n": None}}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"kind": "never"}, {"kind": "never", "n": None}),
        ({"kind": "rolling_days"}, {"kind": "rolling_days", "n": 365}),
        ({"kind": "end_of_month_after"}, {"kind": "end_of_month_after", "n": 12}),
        ({"kind": "end_of_month_after", "n": 0}, {"kind": "end_of_month_after", "n": 0}),
        ({"kind": "end_of_year"}, {"kind": "end_of_year", "n": 1}),
        ({"kind": "end_of_year", "n": 0}, {"kind": "end_of_year", "n": 0}),
    ],
)
async def test_expiry_policies_take_their_default_n(loyalty_client, tenant, policy: dict, expected: dict) -> None:
    response = await _put(loyalty_client, tenant, {"expiry": policy})
    assert response.status_code == 200, response.text
    assert response.json()["config"]["expiry"] == expected


@pytest.mark.parametrize(
    "body",
    [
        {"expiry": {"kind": "never", "n": 3}},
        {"expiry": {"kind": "rolling_days", "n": 0}},
        {"expiry": {"kind": "end_of_month_after", "n": 1201}},
        {"expiry": {"kind": "end_of_year", "n": 101}},
        {"tier_window": {"kind": "lifetime", "n": 1}},
        {"tier_window": {"kind": "calendar_year", "n": 365}},
        {"tier_window": {"kind": "rolling_days", "n": 0}},
    ],
)
async def test_a_policy_parameter_must_suit_its_kind(loyalty_client, tenant, body: dict) -> None:
    response = await _put(loyalty_client, tenant, body)
    assert (response.status_code, response.json()["type"]) == (422, "invalid-policy")
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await loyalty_client.get("/v1/program", headers=tenant.admin)).json()["version"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"expiry": {"kind": "rolling_weeks", "n": 3}},
        {"downgrade_mode": "two_down"},
        {"negative_balance": "forgive"},
        {"earn_per_amount": 0},
        {"max_points_share_bps": 10001},
        {"pending_days": -1},
        {"earn_points": 2**60},
    ],
)
async def test_malformed_values_are_400(loyalty_client, tenant, body: dict) -> None:
    response = await _put(loyalty_client, tenant, body)
    assert response.status_code == 400, response.text


async def test_etag_and_if_match_guard_lost_updates(loyalty_client, tenant) -> None:
    first = await _put(loyalty_client, tenant, {"pending_days": 3})
    assert first.headers["etag"] == '"program-1"'
    again = await _put(loyalty_client, tenant, {"pending_days": 3})
    assert again.headers["etag"] == '"program-1"'
    stale = await _put(loyalty_client, tenant, {"pending_days": 9}, **{"If-Match": '"program-0"'})
    assert (stale.status_code, stale.json()["type"]) == (412, "precondition-failed")
    assert (await loyalty_client.get("/v1/program", headers=tenant.admin)).json()["config"]["pending_days"] == 3
    fresh = await _put(loyalty_client, tenant, {"pending_days": 9}, **{"If-Match": '"program-1"'})
    assert fresh.status_code == 200 and fresh.headers["etag"] == '"program-2"'


async def test_the_programme_is_admin_only_and_per_tenant(loyalty_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    assert (await loyalty_client.get("/v1/program", headers=tenant.client)).status_code == 403
    assert (await loyalty_client.put("/v1/program", json={}, headers=tenant.client)).status_code == 403
    assert (await _put(loyalty_client, tenant, {"pending_days": 1})).status_code == 200
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"admin": ["admin"]})
    other = await loyalty_client.get("/v1/program", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert other.json()["version"] == 0 and other.json()["config"]["pending_days"] == 7


async def test_a_negative_n_is_a_rule_refusal(loyalty_client, tenant) -> None:
    response = await _put(loyalty_client, tenant, {"expiry": {"kind": "end_of_month_after", "n": -2}})
    assert (response.status_code, response.json()["type"]) == (422, "invalid-policy")
