"""Events and webhooks (§3.8) end to end: the outbox written in the business transaction, subscriptions,
and the dispatcher delivering signed requests to a real HTTP receiver on 127.0.0.1.

The business write is a route that exists only in this test: it emits an event in the request's
transaction and can fail afterwards, so a rollback is seen to drop the event and its deliveries.
Time moves through the dispatcher's `as_of`, never by sleeping.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.app import create_service_app
from shared.auth import Principal
from shared.errors import DomainError
from shared.events import emit, verify_signature
from shared.events.webhooks import DELIVER_WEBHOOKS
from shared.http import problem_responses
from shared.jobs import JobResult, run_job
from shared.settings import Settings
from tests.conftest import TenantKeys, serve, settings_for
from tests.shared.receiver import Receiver

SECRET = "s3cret-for-the-tests"
MAX_ATTEMPTS = 3


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- a business write that emits, and can fail after emitting --------------------------------------


class EmitIn(msgspec.Struct, kw_only=True):
    type: str
    data: dict[str, Any] = {}
    fail_after: bool = False


@post("/v1/test/events", responses=problem_responses(401, 409), status_code=201)
async def emit_event(
    request: Request[Principal, Any, Any], data: JSONBody[EmitIn], db: NamedDependency[asyncpg.Connection]
) -> dict[str, str]:
    event_id = await emit(db, request.user.tenant_id, data.type, data.data)
    if data.fail_after:
        raise DomainError("test-refusal", 409, "refused after the event was emitted")
    return {"event_id": event_id}


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return settings_for("loyalty", database_url, webhook_max_attempts=MAX_ATTEMPTS)


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(settings, title="t", description="t", route_handlers=[emit_event])
    async with serve(app) as http:
        yield http


async def subscribe(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    url: str,
    webhook_id: str = "wh",
    event_types: list[str] | None = None,
    active: bool = True,
    secret: str = SECRET,
) -> dict[str, Any]:
    body = {"url": url, "secret": secret, "event_types": event_types or [], "active": active}
    response = await client.put(f"/v1/webhooks/{webhook_id}", json=body, headers=tenant.admin)
    assert response.status_code in (200, 201), response.text
    webhook: dict[str, Any] = response.json()
    return webhook


async def emit_via_http(
    client: httpx.AsyncClient, tenant: TenantKeys, event_type: str = "points.earned", **data: Any
) -> str:
    response = await client.post("/v1/test/events", json={"type": event_type, "data": data}, headers=tenant.client)
    assert response.status_code == 201, response.text
    event_id: str = response.json()["event_id"]
    return event_id


async def dispatch(
    pool: asyncpg.Pool, settings: Settings, tenant: TenantKeys, as_of: datetime, **kwargs: Any
) -> JobResult:
    return await run_job(
        pool, DELIVER_WEBHOOKS, settings, tenant_id=tenant.tenant_id, as_of=as_of, trigger="test", **kwargs
    )


async def deliveries(
    client: httpx.AsyncClient, tenant: TenantKeys, webhook_id: str = "wh", **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params, headers=tenant.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def soon() -> datetime:
    """An `as_of` at which everything emitted so far is due (the rows carry the database's clock)."""
    return datetime.now(UTC) + timedelta(seconds=1)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- the outbox ------------------------------------------------------------------------------------


async def test_a_committed_write_carries_its_event_and_a_delivery_per_matching_subscription(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url, "all")  # empty event_types: every event
    await subscribe(client, tenant, receiver.url, "points", event_types=["points.earned", "points.spent"])
    await subscribe(client, tenant, receiver.url, "tiers", event_types=["tier.changed"])
    await subscribe(client, tenant, receiver.url, "paused", active=False)

    earned = await emit_via_http(client, tenant, "points.earned", member_id="ann", points=5)
    tier = await emit_via_http(client, tenant, "tier.changed", member_id="ann", tier="gold")

    async with loyalty_pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT event_id::text, type, data FROM events WHERE tenant_id = $1 ORDER BY seq", tenant.tenant_id
        )
        fan_out = await conn.fetch(
            """SELECT event_id::text, webhook_id, status, attempts FROM webhook_deliveries
                WHERE tenant_id = $1 ORDER BY event_id, webhook_id""",
            tenant.tenant_id,
        )
    assert [(e["event_id"], e["type"], e["data"]) for e in events] == [
        (earned, "points.earned", {"member_id": "ann", "points": 5}),
        (tier, "tier.changed", {"member_id": "ann", "tier": "gold"}),
    ]
    assert sorted((d["event_id"], d["webhook_id"]) for d in fan_out) == sorted(
        [(earned, "all"), (earned, "points"), (tier, "all"), (tier, "tiers")]
    )
    assert {(d["status"], d["attempts"]) for d in fan_out} == {("pending", 0)}
    assert await deliveries(client, tenant, "paused") == []


async def test_a_rolled_back_write_leaves_neither_event_nor_delivery(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    refused = await client.post(
        "/v1/test/events",
        json={"type": "points.earned", "data": {"points": 1}, "fail_after": True},
        headers=tenant.client,
    )
    assert refused.status_code == 409 and refused.json()["type"] == "test-refusal"
    async with loyalty_pool.acquire() as conn:
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM events WHERE tenant_id = $1) AS events,
                      (SELECT count(*) FROM webhook_deliveries WHERE tenant_id = $1) AS deliveries""",
            tenant.tenant_id,
        )
    assert dict(counts) == {"events": 0, "deliveries": 0}


# --- the dispatcher --------------------------------------------------------------------------------


async def test_every_delivery_is_signed_and_carries_the_event_envelope(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    first = await emit_via_http(client, tenant, "points.earned", member_id="bo", points=10)
    second = await emit_via_http(client, tenant, "points.spent", member_id="bo", points=3)

    result = await dispatch(loyalty_pool, settings, tenant, soon())

    assert (result.status, result.processed) == ("completed", 2)
    assert sorted(receiver.event_ids()) == sorted([first, second])
    by_event = {d["event_id"]: d for d in await deliveries(client, tenant)}
    for request in receiver.requests:
        assert request.path == "/hooks/loyalty"
        assert request.headers["content-type"] == "application/json"
        assert verify_signature(SECRET, request.headers, request.body) == request.headers["webhook-id"]
        envelope = request.envelope()
        event_id = request.headers["webhook-id"]
        assert envelope["event_id"] == event_id
        assert envelope["tenant_id"] == tenant.tenant_id
        assert request.headers["x-event-type"] == envelope["type"]
        assert request.headers["x-delivery-id"] == by_event[event_id]["delivery_id"]
        at(envelope["occurred_at"]), at(envelope["created_at"])  # RFC 3339
    envelopes = {r.headers["webhook-id"]: r.envelope() for r in receiver.requests}
    assert (envelopes[first]["type"], envelopes[first]["data"]) == ("points.earned", {"member_id": "bo", "points": 10})
    assert (envelopes[second]["type"], envelopes[second]["data"]) == ("points.spent", {"member_id": "bo", "points": 3})
    assert {(d["status"], d["attempts"], d["last_status_code"], d["next_attempt_at"]) for d in by_event.values()} == {
        ("delivered", 1, 204, None)
    }
    assert all(d["delivered_at"] for d in by_event.values())

    # Nothing is due any more: a second run sends nothing.
    again = await dispatch(loyalty_pool, settings, tenant, soon() + timedelta(days=1))
    assert again.processed == 0 and len(receiver.requests) == 2


async def test_a_failing_receiver_gets_retries_with_exponential_backoff(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    event_id = await emit_via_http(client, tenant, points=1)
    receiver.fail_first = 2
    t0 = soon()

    assert (await dispatch(loyalty_pool, settings, tenant, t0)).processed == 1
    [first] = await deliveries(client, tenant)
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("pending", 1, 500)
    assert first["last_error"] == "HTTP 500"
    assert at(first["next_attempt_at"]) == t0 + timedelta(seconds=30)
    assert at(first["last_attempt_at"]) == t0

    # Not due before its time.
    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=29))).processed == 0
    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=30))).processed == 1
    [second] = await deliveries(client, tenant)
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert at(second["next_attempt_at"]) == t0 + timedelta(seconds=30 + 60)

    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=89))).processed == 0
    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=90))).processed == 1
    [third] = await deliveries(client, tenant)
    assert (third["status"], third["attempts"], third["last_status_code"]) == ("delivered", 3, 204)
    assert third["next_attempt_at"] is None and third["last_error"] is None

    assert [r.status for r in receiver.requests] == [500, 500, 204]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event_id}
    assert len({r.headers["x-delivery-id"] for r in receiver.requests}) == 1
    assert receiver.event_ids() == [event_id]


async def test_an_always_failing_receiver_dead_letters_then_a_replay_delivers(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    event_id = await emit_via_http(client, tenant, points=2)
    receiver.fail_always = True
    t0 = soon()
    for offset in (0, 30, 90):
        assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=offset))).processed == 1
    [dead] = await deliveries(client, tenant)
    assert (dead["status"], dead["attempts"], dead["next_attempt_at"]) == ("dead", MAX_ATTEMPTS, None)
    assert dead["delivered_at"] is None and dead["last_error"] == "HTTP 500"
    # A dead letter is never retried on its own.
    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(days=30))).processed == 0
    assert len(receiver.requests) == MAX_ATTEMPTS and receiver.event_ids() == []

    receiver.fail_always = False
    replay = await client.post(
        f"/v1/webhooks/wh/deliveries/{dead['delivery_id']}/replay", json={}, headers=tenant.admin
    )
    assert replay.status_code == 200, replay.text
    assert (replay.json()["status"], replay.json()["delivery_id"]) == ("pending", dead["delivery_id"])
    assert (await dispatch(loyalty_pool, settings, tenant, soon())).processed == 1
    [delivered] = await deliveries(client, tenant)
    assert (delivered["status"], delivered["attempts"]) == ("delivered", MAX_ATTEMPTS + 1)

    # A delivered one can be replayed too; the consumer sees the same event id and ignores it.
    replay = await client.post(
        f"/v1/webhooks/wh/deliveries/{dead['delivery_id']}/replay", json={}, headers=tenant.admin
    )
    assert replay.status_code == 200
    assert (await dispatch(loyalty_pool, settings, tenant, soon())).processed == 1
    assert len(receiver.requests) == MAX_ATTEMPTS + 2
    assert receiver.event_ids() == [event_id]


async def test_an_unreachable_url_is_a_failed_attempt(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, f"http://127.0.0.1:{closed_port()}/nobody", "gone")
    await subscribe(client, tenant, receiver.url, "up")
    event_id = await emit_via_http(client, tenant, points=3)
    t0 = soon()

    result = await dispatch(loyalty_pool, settings, tenant, t0)

    assert (result.status, result.processed) == ("completed", 2)
    [gone] = await deliveries(client, tenant, "gone")
    assert (gone["status"], gone["attempts"], gone["last_status_code"]) == ("pending", 1, None)
    assert "ConnectError" in gone["last_error"]
    assert at(gone["next_attempt_at"]) == t0 + timedelta(seconds=30)
    # The other subscription of the same batch is not held back by it.
    assert receiver.event_ids() == [event_id]
    assert [d["status"] for d in await deliveries(client, tenant, "up")] == ["delivered"]


async def test_queued_deliveries_go_to_the_subscriptions_current_url(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    """Fixing a broken endpoint lets what is queued through; deactivating stops new deliveries only."""
    await subscribe(client, tenant, f"http://127.0.0.1:{closed_port()}/old")
    event_id = await emit_via_http(client, tenant, points=8)
    t0 = soon()
    assert (await dispatch(loyalty_pool, settings, tenant, t0)).processed == 1
    await subscribe(client, tenant, receiver.url, active=False)
    ignored = await emit_via_http(client, tenant, points=9)
    assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=30))).processed == 1
    assert receiver.event_ids() == [event_id] and ignored not in receiver.event_ids()
    [delivered] = await deliveries(client, tenant)
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize("url", ["http://éxámple..com/hooks", "http://:80/hooks"])
async def test_an_unusable_url_is_a_failed_attempt_too(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, url: str
) -> None:
    """PUT refuses such URLs (422); one stored anyway (the table only checks the scheme) still ends in a
    dead letter, never a crash of the dispatcher."""
    async with loyalty_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO webhooks (tenant_id, webhook_id, url, secret) VALUES ($1, 'odd', $2, $3)",
            tenant.tenant_id,
            url,
            SECRET,
        )
    await emit_via_http(client, tenant, points=4)
    t0 = soon()
    for offset in (0, 30, 90):
        assert (await dispatch(loyalty_pool, settings, tenant, t0 + timedelta(seconds=offset))).processed == 1
    [dead] = await deliveries(client, tenant, "odd")
    assert (dead["status"], dead["attempts"], dead["last_status_code"]) == ("dead", MAX_ATTEMPTS, None)
    assert dead["last_error"]


async def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    await emit_via_http(client, tenant, points=7)
    receiver.delay = 1.0
    impatient = msgspec.structs.replace(settings, webhook_timeout_seconds=0.2)
    started = time.monotonic()
    assert (await dispatch(loyalty_pool, impatient, tenant, soon())).processed == 1
    assert time.monotonic() - started < 0.9
    [late] = await deliveries(client, tenant)
    assert (late["status"], late["attempts"], late["last_status_code"]) == ("pending", 1, None)
    assert "Timeout" in late["last_error"]


async def test_deliveries_are_listed_newest_first_with_a_status_filter_and_a_cursor(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    delivered = [await emit_via_http(client, tenant, n=n) for n in range(3)]
    await dispatch(loyalty_pool, settings, tenant, soon())
    pending = [await emit_via_http(client, tenant, n=n) for n in range(3, 5)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/webhooks/wh/deliveries", params=params, headers=tenant.admin)
        assert response.status_code == 200
        page = response.json()
        pages += 1
        seen += [d["event_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(delivered + pending))
    assert [d["event_id"] for d in await deliveries(client, tenant, status="pending")] == pending[::-1]
    assert [d["event_id"] for d in await deliveries(client, tenant, status="delivered")] == delivered[::-1]
    assert await deliveries(client, tenant, status="dead") == []
    assert {d["event_type"] for d in await deliveries(client, tenant)} == {"points.earned"}

    bad_status = await client.get("/v1/webhooks/wh/deliveries?status=lost", headers=tenant.admin)
    bad_cursor = await client.get("/v1/webhooks/wh/deliveries?cursor=nonsense", headers=tenant.admin)
    assert bad_status.status_code == 400
    assert (bad_cursor.status_code, bad_cursor.json()["type"]) == (400, "invalid-cursor")


async def test_another_tenant_sees_nothing_of_a_subscription(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    loyalty_pool: asyncpg.Pool,
    settings: Settings,
    receiver: Receiver,
    database_url: str,
) -> None:
    from ops.cli import provision
    from shared.tenants import TenantIn

    other_id = tenant.tenant_id + "x"
    keys = await provision(database_url, other_id, TenantIn(name="x"), {"admin": ["admin", "client"]})
    other = TenantKeys(other_id, keys["admin"] or "", keys["admin"] or "")
    await subscribe(client, tenant, receiver.url)
    await emit_via_http(client, tenant, points=5)
    [mine] = await deliveries(client, tenant)

    assert (await client.get("/v1/webhooks/wh", headers=other.admin)).json()["type"] == "webhook-not-found"
    listed = await client.get("/v1/webhooks/wh/deliveries", headers=other.admin)
    assert (listed.status_code, listed.json()["type"]) == (404, "webhook-not-found")
    replay = await client.post(f"/v1/webhooks/wh/deliveries/{mine['delivery_id']}/replay", headers=other.admin)
    assert (replay.status_code, replay.json()["type"]) == (404, "delivery-not-found")
    assert (await client.get("/v1/webhooks", headers=other.admin)).json()["items"] == []

    # The same webhook id in the other tenant is its own subscription; its dispatcher run sends nothing of ours.
    theirs = await subscribe(client, other, receiver.url, secret="their-secret-0123456")
    assert theirs["version"] == 1
    assert (await dispatch(loyalty_pool, settings, other, soon() + timedelta(days=1))).processed == 0
    assert receiver.requests == []
    assert (await dispatch(loyalty_pool, settings, tenant, soon())).processed == 1
    assert verify_signature(SECRET, receiver.requests[0].headers, receiver.requests[0].body)


async def test_a_replay_of_an_unknown_delivery_is_404(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    await subscribe(client, tenant, "http://127.0.0.1:9/x")
    response = await client.post(f"/v1/webhooks/wh/deliveries/{uuid.uuid4()}/replay", headers=tenant.admin)
    assert (response.status_code, response.json()["type"]) == (404, "delivery-not-found")
    response = await client.post(f"/v1/webhooks/nope/deliveries/{uuid.uuid4()}/replay", headers=tenant.admin)
    assert (response.status_code, response.json()["type"]) == (404, "delivery-not-found")


# --- subscriptions ---------------------------------------------------------------------------------


async def test_put_creates_then_is_idempotent_and_versions_changes(client: httpx.AsyncClient, tenant: TenantKeys):
    body = {"url": "https://shop.example/hooks", "secret": SECRET, "event_types": ["points.earned"]}
    created = await client.put("/v1/webhooks/main", json=body, headers=tenant.admin)
    same = await client.put("/v1/webhooks/main", json=body, headers=tenant.admin)
    assert created.status_code == 201 and same.status_code == 200
    assert created.json()["version"] == same.json()["version"] == 1
    assert created.json() == same.json()
    assert created.json()["active"] is True and created.json()["event_types"] == ["points.earned"]

    rotated = await client.put(
        "/v1/webhooks/main", json={**body, "secret": "a-new-secret-0123456"}, headers=tenant.admin
    )
    assert (rotated.status_code, rotated.json()["version"]) == (200, 2)
    narrowed = await client.put(
        "/v1/webhooks/main", json={**body, "secret": "a-new-secret-0123456", "active": False}, headers=tenant.admin
    )
    assert (narrowed.json()["version"], narrowed.json()["active"]) == (3, False)

    for response in (created, same, rotated, narrowed):
        assert "secret" not in response.json() and SECRET not in response.text
    read = await client.get("/v1/webhooks/main", headers=tenant.admin)
    assert read.status_code == 200 and "secret" not in read.json() and read.json()["version"] == 3
    listed = await client.get("/v1/webhooks", headers=tenant.admin)
    assert [w["webhook_id"] for w in listed.json()["items"]] == ["main"]
    assert "secret" not in listed.json()["items"][0]


async def test_event_types_are_a_set(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    body = {"url": "http://shop.example/h", "secret": SECRET, "event_types": ["tier.changed", "points.earned"]}
    created = await client.put("/v1/webhooks/set", json=body, headers=tenant.admin)
    reordered = {**body, "event_types": ["points.earned", "tier.changed", "points.earned"]}
    same = await client.put("/v1/webhooks/set", json=reordered, headers=tenant.admin)
    assert created.json()["event_types"] == ["points.earned", "tier.changed"]
    assert (same.status_code, same.json()["version"]) == (200, 1)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"event_types": ["Points.Earned"]}, 422),
        ({"event_types": ["points"]}, 422),
        ({"event_types": ["points.earned", ""]}, 422),
        ({"url": "http://:80/hooks"}, 422),
        ({"url": "http://[::1/hooks"}, 422),
        ({"url": "http://éxámple.com/hooks"}, 400),
        ({"url": "http://shop.example/a b"}, 400),
        ({"url": "http://shop.example/\x1e"}, 400),
        ({"url": "ftp://shop.example/hooks"}, 400),
        ({"url": "shop.example/hooks"}, 400),
        ({"url": "javascript:alert(1)"}, 400),
        ({"secret": "short"}, 400),
        ({"active": "yes"}, 400),
    ],
)
async def test_put_refuses_bad_subscriptions(
    client: httpx.AsyncClient, tenant: TenantKeys, change: dict[str, Any], status: int
) -> None:
    body = {"url": "https://shop.example/hooks", "secret": SECRET, "event_types": [], **change}
    response = await client.put("/v1/webhooks/bad", json=body, headers=tenant.admin)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if status == 422:
        assert response.json()["type"] == ("invalid-event-type" if "event_types" in change else "invalid-url")
    assert (await client.get("/v1/webhooks/bad", headers=tenant.admin)).status_code == 404


async def test_webhooks_are_admin_only(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    body = {"url": "https://shop.example/hooks", "secret": SECRET}
    assert (await client.put("/v1/webhooks/c", json=body, headers=tenant.client)).status_code == 403
    assert (await client.get("/v1/webhooks", headers=tenant.client)).status_code == 403
    assert (await client.get("/v1/webhooks/c/deliveries", headers=tenant.client)).status_code == 403
    assert (await client.get("/v1/webhooks")).status_code == 401


async def test_metrics_count_deliveries_by_outcome(
    client: httpx.AsyncClient, tenant: TenantKeys, loyalty_pool: asyncpg.Pool, settings: Settings, receiver: Receiver
) -> None:
    await subscribe(client, tenant, receiver.url)
    await emit_via_http(client, tenant, points=6)
    receiver.fail_first = 1
    await dispatch(loyalty_pool, settings, tenant, soon())
    await dispatch(loyalty_pool, settings, tenant, soon() + timedelta(minutes=1))
    metrics = (await client.get("/metrics")).text
    assert 'webhook_deliveries_total{outcome="retry"}' in metrics
    assert 'webhook_deliveries_total{outcome="delivered"}' in metrics
    assert 'job_runs_total{job="deliver-webhooks",status="completed"}' in metrics
