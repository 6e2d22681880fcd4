"""The per-request kernel: the API-key cache (single-flight, refresh ahead), the metrics and request-id middleware."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

import pytest
from litestar import Litestar, Response, get
from litestar.middleware import DefineMiddleware
from litestar.params import PathParameter
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY, generate_latest

from shared.auth import KeyCache, Principal
from shared.observability import HttpMetricsMiddleware, RequestIdMiddleware

ALICE = Principal(tenant_id="t1", key_id="k1", scopes=frozenset({"client"}))
BOB = Principal(tenant_id="t1", key_id="k2", scopes=frozenset({"admin"}))


class Loader:
    def __init__(self, *results: Principal | None | Exception, delay: float = 0.01) -> None:
        self.results = list(results)
        self.calls = 0
        self.delay = delay

    async def __call__(self, digest: bytes) -> Principal | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        result = self.results[min(self.calls, len(self.results)) - 1]
        if isinstance(result, Exception):
            raise result
        return result


async def test_concurrent_misses_of_one_key_send_one_query() -> None:
    cache, load = KeyCache(10), Loader(ALICE)
    found = await asyncio.gather(*(cache.resolve(b"d", load) for _ in range(32)))
    assert found == [ALICE] * 32 and load.calls == 1
    assert await cache.resolve(b"d", load) is ALICE and load.calls == 1


async def test_an_entry_near_expiry_is_served_and_reread_in_the_background() -> None:
    cache, load = KeyCache(1.0, refresh_ahead=0.5), Loader(BOB)
    cache.put(b"d", ALICE, read_at=time.monotonic() - 0.7)  # 0.3 s left: inside the refresh window
    assert await cache.resolve(b"d", load) is ALICE  # served now, not after the query
    await asyncio.sleep(0)
    assert await cache.resolve(b"d", load) is ALICE and load.calls == 1  # one refresh in flight, not two
    await asyncio.sleep(0.05)
    assert await cache.resolve(b"d", load) is BOB and load.calls == 1  # the refreshed entry, no new query


async def test_an_expired_entry_is_never_served() -> None:
    cache, load = KeyCache(1.0), Loader(None)
    cache.put(b"d", ALICE, read_at=time.monotonic() - 1.5)
    assert await cache.resolve(b"d", load) is None and load.calls == 1  # revoked since: refused


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_cached() -> None:
    cache, load = KeyCache(10), Loader(OSError("database gone"), ALICE)
    results = await asyncio.gather(cache.resolve(b"d", load), cache.resolve(b"d", load), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError] and load.calls == 1
    assert await cache.resolve(b"d", load) is ALICE and load.calls == 2


async def test_a_caller_going_away_does_not_cancel_the_others_lookup() -> None:
    cache, load = KeyCache(10), Loader(ALICE, delay=0.05)
    first = asyncio.ensure_future(cache.resolve(b"d", load))
    second = asyncio.ensure_future(cache.resolve(b"d", load))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second is ALICE and load.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


@get("/kernel/{item_id:str}")
async def _item(item_id: Annotated[str, PathParameter()]) -> Response[dict[str, str]]:
    if item_id == "boom":
        raise RuntimeError("boom")
    return Response({"id": item_id}, headers={"X-Request-ID": "set-by-handler"})


def _kernel_app() -> Litestar:
    return Litestar(
        route_handlers=[_item],
        middleware=[RequestIdMiddleware, DefineMiddleware(HttpMetricsMiddleware, app_name="kernel-test")],
    )


async def test_metrics_keep_litestar_names_labels_and_count_5xx() -> None:
    async with AsyncTestClient(_kernel_app()) as client:
        assert (await client.get("/kernel/a")).status_code == 200
        assert (await client.get("/kernel/b")).status_code == 200
        assert (await client.get("/kernel/boom")).status_code == 500
    text = generate_latest(REGISTRY).decode()
    labels = 'app_name="kernel-test",method="GET",path="/kernel/{item_id}"'
    assert f'http_requests_total{{{labels},status_code="200"}} 2.0' in text
    assert f'http_requests_total{{{labels},status_code="500"}} 1.0' in text
    assert f'http_requests_error_total{{{labels},status_code="500"}} 1.0' in text
    assert f'http_request_duration_seconds_count{{{labels},status_code="200"}} 2.0' in text
    assert f'http_requests_in_progress{{{labels},status_code="200"}} 0.0' in text
    assert "/kernel/a" not in text  # ids never become label values


async def test_request_id_is_set_once_even_over_a_handler_header() -> None:
    async with AsyncTestClient(_kernel_app()) as client:
        response = await client.get("/kernel/a", headers={"X-Request-ID": "abc-123"})
    assert response.headers.get_list("x-request-id") == ["abc-123"]


async def test_a_generated_request_id_is_a_uuid4_hex() -> None:
    async with AsyncTestClient(_kernel_app()) as client:
        response = await client.get("/kernel/a", headers={"X-Request-ID": "no spaces allowed"})
    generated = response.headers["x-request-id"]
    parsed = uuid.UUID(generated)
    assert parsed.hex == generated and parsed.version == 4 and parsed.variant == uuid.RFC_4122
