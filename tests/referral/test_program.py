"""Programme configuration (§6.1): defaults, the 3-level limit, rate sums, ETag and If-Match."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TenantKeys


async def _put(client: httpx.AsyncClient, tenant: TenantKeys, body: dict, **headers: str) -> httpx.Response:
    return await client.put("/v1/program", json=body, headers={**tenant.admin, **headers})


async def test_a_new_tenant_runs_on_the_defaults(referral_client, tenant) -> None:
    response = await referral_client.get("/v1/program", headers=tenant.admin)
    assert response.status_code == 200
    program = response.json()
    assert program["version"] == 0 and response.headers["etag"] == '"program-0"'
    config = program["config"]
    assert (config["depth"], config["level_rates_bps"], config["freeze_days"]) == (2, [1000, 500], 7)
    assert (config["min_withdrawal"], config["eligibility"], config["clawback"]) == (100, "everyone", "debt")
    assert config["binding"]["mode"] == "first_bind" and config["self_purchase_commission"] is False


@pytest.mark.parametrize("depth", [4, 5, 100])
async def test_more_than_three_levels_is_refused(referral_client, tenant, depth: int) -> None:
    response = await _put(referral_client, tenant, {"depth": depth, "level_rates_bps": [100] * depth})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "depth-not-allowed" and "pyramid" in response.json()["detail"]
    assert (await referral_client.get("/v1/program", headers=tenant.admin)).json()["version"] == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"depth": 3, "level_rates_bps": [5000, 3000, 2001]}, "rates-exceed-total"),
        ({"depth": 2, "level_rates_bps": [1000]}, "invalid-rates"),
        ({"depth": 1, "level_rates_bps": [10001]}, "invalid-rates"),
        ({"depth": 1, "level_rates_bps": [-1]}, "invalid-rates"),
        ({"category_rates_bps": {"wine": [9000, 2000]}}, "rates-exceed-total"),
        ({"category_rates_bps": {"": [10, 10]}}, "invalid-category"),
    ],
)
async def test_rates_are_checked(referral_client, tenant, body: dict, problem: str) -> None:
    response = await _put(referral_client, tenant, body)
    assert (response.status_code, response.json()["type"]) == (422, problem)


async def test_the_limits_themselves_are_accepted(referral_client, tenant) -> None:
    body = {"depth": 3, "level_rates_bps": [5000, 3000, 2000], "loyalty_events_secret": "s" * 16}
    response = await _put(referral_client, tenant, body)
    assert response.status_code == 200, response.text
    program = response.json()
    assert program["version"] == 1 and program["config"]["level_rates_bps"] == [5000, 3000, 2000]
    assert program["loyalty_events_secret_set"] is True and "loyalty_events_secret" not in program["config"]


async def test_etag_and_if_match_guard_lost_updates(referral_client, tenant) -> None:
    first = await _put(referral_client, tenant, {"freeze_days": 3})
    assert first.headers["etag"] == '"program-1"'
    # The same body again changes nothing, not even the version.
    again = await _put(referral_client, tenant, {"freeze_days": 3})
    assert again.headers["etag"] == '"program-1"'
    stale = await _put(referral_client, tenant, {"freeze_days": 9}, **{"If-Match": '"program-0"'})
    assert (stale.status_code, stale.json()["type"]) == (412, "precondition-failed")
    assert (await referral_client.get("/v1/program", headers=tenant.admin)).json()["config"]["freeze_days"] == 3
    fresh = await _put(referral_client, tenant, {"freeze_days": 9}, **{"If-Match": '"program-1"'})
    assert fresh.status_code == 200 and fresh.headers["etag"] == '"program-2"'


async def test_the_programme_is_admin_only_and_per_tenant(referral_client, tenant, database_url) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    assert (await referral_client.get("/v1/program", headers=tenant.client)).status_code == 403
    assert (await _put(referral_client, tenant, {"freeze_days": 1})).status_code == 200
    keys = await provision(database_url, tenant.tenant_id + "x", TenantIn(name="other"), {"admin": ["admin"]})
    other = await referral_client.get("/v1/program", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert other.json()["config"]["freeze_days"] == 7


async def test_strict_types_in_the_body(referral_client, tenant) -> None:
    """Lenient coercion (0 for false, "2" for 2) is a 400, as the contract's types say."""
    for body in ({"self_purchase_commission": 0}, {"depth": "2"}, {"self_purchase_commission": "true"}):
        response = await _put(referral_client, tenant, body)
        assert (response.status_code, response.json()["type"]) == (400, "invalid-request"), body


async def test_integral_floats_count_as_integers_and_broken_json_is_refused(referral_client, tenant) -> None:
    """JSON Schema's integers include 2.0 (strict_body checks those on its slow path only); 2.5 is not one."""
    accepted = await _put(referral_client, tenant, {"depth": 2.0, "level_rates_bps": [1000.0, 500], "freeze_days": 3})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["config"]["depth"], accepted.json()["config"]["freeze_days"]) == (2, 3)
    fractional = await _put(referral_client, tenant, {"freeze_days": 2.5})
    assert (fractional.status_code, fractional.json()["type"]) == (400, "invalid-request")
    for raw in (b"", b"{", b"[1,"):
        response = await referral_client.put(
            "/v1/program", content=raw, headers={**tenant.admin, "Content-Type": "application/json"}
        )
        assert (response.status_code, response.json()["detail"]) == (400, "the body is not valid JSON"), raw
