"""Webhook subscriptions, deliveries and the dispatcher job (§3.8).

Delivery is at least once: a batch leases its rows (moves `next_attempt_at` forward) and commits
before it sends, so a dispatcher killed mid-send re-sends after the lease and never loses a delivery.
Receivers deduplicate by `webhook-id`, which is the event id and the same on every attempt.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import httpx
import msgspec
from prometheus_client import Counter

from shared.errors import DomainError
from shared.events.outbox import Event
from shared.events.signing import signature_headers
from shared.jobs import Job, JobContext
from shared.pagination import Page, decode_cursor, encode_cursor

__all__ = [
    "DELIVER_WEBHOOKS",
    "Delivery",
    "Webhook",
    "WebhookIn",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
    "replay_delivery",
    "upsert_webhook",
]

WEBHOOK_DELIVERIES = Counter("webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"])
_EVENT_TYPE = re.compile(r"^[a-z_]{1,50}\.[a-z_]{1,50}$")
_LEASE = timedelta(seconds=120)
_MAX_BACKOFF = timedelta(hours=6)

DeliveryStatus = Literal["pending", "delivered", "dead"]


class WebhookIn(msgspec.Struct, kw_only=True):
    # Printable ASCII (an RFC 3986 URI: punycode and percent-encoding for the rest). A class like `\S`
    # differs between Python and the ECMA regexes of JSON Schema, so clients would disagree with us.
    url: Annotated[
        str,
        msgspec.Meta(pattern=r"^https?://[!-~]+$", max_length=2000, description="http(s) URL, printable ASCII"),
    ]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]
    # Item constraints are checked in upsert_webhook (422): Litestar's schema drops them from list items.
    event_types: Annotated[list[str], msgspec.Meta(max_length=100, description="e.g. `points.earned`; empty: all")] = []
    active: bool = True


class Webhook(msgspec.Struct, kw_only=True):
    """A subscription as read back: the secret is never returned."""

    webhook_id: str
    url: str
    event_types: list[str]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class Delivery(msgspec.Struct, kw_only=True):
    delivery_id: UUID
    webhook_id: str
    event_id: UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


_WEBHOOK_COLUMNS = "webhook_id, url, event_types, active, version, created_at, updated_at"

_UPSERT = f"""
INSERT INTO webhooks (tenant_id, webhook_id, url, secret, event_types, active)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, webhook_id) DO UPDATE
   SET url = EXCLUDED.url, secret = EXCLUDED.secret, event_types = EXCLUDED.event_types,
       active = EXCLUDED.active, version = webhooks.version + 1, updated_at = now()
 WHERE (webhooks.url, webhooks.secret, webhooks.event_types, webhooks.active)
       IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.secret, EXCLUDED.event_types, EXCLUDED.active)
RETURNING {_WEBHOOK_COLUMNS}, (xmax = 0) AS created
"""

_GET = f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND webhook_id = $2"

_LIST = f"""
SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND webhook_id > $2 ORDER BY webhook_id LIMIT $3
"""

_DELIVERY_COLUMNS = """d.delivery_id, d.webhook_id, d.event_id, e.type AS event_type, d.status, d.attempts,
       CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at, d.last_attempt_at,
       d.last_status_code, d.last_error, d.delivered_at, d.created_at"""

_DELIVERIES = f"""
SELECT d.seq, {_DELIVERY_COLUMNS}
  FROM webhook_deliveries d
  JOIN events e ON e.tenant_id = d.tenant_id AND e.event_id = d.event_id
 WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND d.seq < $3 AND ($4::text IS NULL OR d.status = $4)
 ORDER BY d.seq DESC
 LIMIT $5
"""

_REPLAY = f"""
WITH replayed AS (
    UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), delivered_at = NULL
     WHERE tenant_id = $1 AND webhook_id = $2 AND delivery_id = $3
    RETURNING *
)
SELECT {_DELIVERY_COLUMNS}
  FROM replayed d JOIN events e ON e.tenant_id = d.tenant_id AND e.event_id = d.event_id
"""

# Lease due deliveries (commit before sending); the outer join brings what a send needs.
_LEASE_DUE = """
WITH due AS (
    SELECT tenant_id, delivery_id FROM webhook_deliveries
     WHERE status = 'pending' AND next_attempt_at <= $1 AND ($2::text IS NULL OR tenant_id = $2)
     ORDER BY next_attempt_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d
       SET attempts = d.attempts + 1, last_attempt_at = $1, next_attempt_at = $1 + $4::interval
      FROM due WHERE d.tenant_id = due.tenant_id AND d.delivery_id = due.delivery_id
    RETURNING d.tenant_id, d.delivery_id, d.webhook_id, d.event_id, d.attempts
)
SELECT l.tenant_id, l.delivery_id, l.attempts, w.url, w.secret,
       e.event_id, e.type, e.occurred_at, e.created_at, e.data
  FROM leased l
  JOIN webhooks w ON w.tenant_id = l.tenant_id AND w.webhook_id = l.webhook_id
  JOIN events e ON e.tenant_id = l.tenant_id AND e.event_id = l.event_id
"""

_RECORD = """
UPDATE webhook_deliveries
   SET status = $3, last_status_code = $4, last_error = $5, next_attempt_at = $6,
       delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
 WHERE tenant_id = $1 AND delivery_id = $2
"""

_encode = msgspec.json.Encoder().encode


async def upsert_webhook(
    conn: asyncpg.Connection, tenant_id: str, webhook_id: str, data: WebhookIn
) -> tuple[Webhook, bool]:
    """Create or replace a subscription; the same body again changes nothing (same version)."""
    for event_type in data.event_types:
        if not _EVENT_TYPE.match(event_type):
            raise DomainError(
                "invalid-event-type", 422, f"{event_type[:100]!r} is not an event type like points.earned"
            )
    _check_url(data.url)
    row = await conn.fetchrow(
        _UPSERT, tenant_id, webhook_id, data.url, data.secret, sorted(set(data.event_types)), data.active
    )
    if row is None:  # identical to what is stored
        return await get_webhook(conn, tenant_id, webhook_id), False
    fields = dict(row)
    created = fields.pop("created")
    return Webhook(**fields), created


def _check_url(url: str) -> None:
    """What the schema's pattern cannot say: the dispatcher's HTTP client must be able to use the URL."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    if not host:
        raise DomainError("invalid-url", 422, f"{url[:100]!r} is not a usable http(s) URL")


async def get_webhook(conn: asyncpg.Connection, tenant_id: str, webhook_id: str) -> Webhook:
    row = await conn.fetchrow(_GET, tenant_id, webhook_id)
    if row is None:
        raise DomainError("webhook-not-found", 404, f"webhook {webhook_id} does not exist")
    return Webhook(**dict(row))


async def list_webhooks(conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None) -> Page[Webhook]:
    after = decode_cursor(cursor, (str,))[0] if cursor else ""
    rows = await conn.fetch(_LIST, tenant_id, after, limit + 1)
    items = [Webhook(**dict(r)) for r in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].webhook_id]) if len(rows) > limit else None)


async def list_deliveries(
    conn: asyncpg.Connection,
    tenant_id: str,
    webhook_id: str,
    *,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[Delivery]:
    """Newest first."""
    await get_webhook(conn, tenant_id, webhook_id)
    before = decode_cursor(cursor, (int,))[0] if cursor else 2**63 - 1
    rows = await conn.fetch(_DELIVERIES, tenant_id, webhook_id, before, status, limit + 1)
    items = [Delivery(**{k: v for k, v in r.items() if k != "seq"}) for r in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([rows[limit - 1]["seq"]]) if len(rows) > limit else None)


async def replay_delivery(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, delivery_id: UUID) -> Delivery:
    """Queue a delivery again now, whatever its state: a dead letter gets a new chance."""
    row = await conn.fetchrow(_REPLAY, tenant_id, webhook_id, delivery_id)
    if row is None:
        raise DomainError("delivery-not-found", 404, f"delivery {delivery_id} of webhook {webhook_id} does not exist")
    return Delivery(**dict(row))


def _backoff(attempts: int, base_seconds: float) -> timedelta:
    return min(timedelta(seconds=base_seconds * 2 ** (attempts - 1)), _MAX_BACKOFF)


async def _send(client: httpx.AsyncClient, row: asyncpg.Record, limit_seconds: float) -> tuple[int | None, str | None]:
    envelope = Event(
        event_id=str(row["event_id"]),
        type=row["type"],
        tenant_id=row["tenant_id"],
        occurred_at=row["occurred_at"],
        created_at=row["created_at"],
        data=row["data"],
    )
    body = _encode(envelope)
    headers = {
        "content-type": "application/json",
        "user-agent": "loyalty-referral-webhooks/1",
        "x-event-type": row["type"],
        "x-delivery-id": str(row["delivery_id"]),
        **signature_headers(row["secret"], envelope.event_id, body),
    }
    try:
        # One bound for the whole exchange (httpx's timeout is per read, so a trickling peer could hold
        # the batch); the response body is never read.
        async with (
            asyncio.timeout(limit_seconds),
            client.stream("POST", row["url"], content=body, headers=headers) as response,
        ):
            code = response.status_code
    except TimeoutError:
        return None, f"TimeoutError: no response within {limit_seconds:g} s"
    except Exception as exc:  # whatever the URL or the peer does, it is one failed attempt, never a crash
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= code < 300:
        return code, None
    return code, f"HTTP {code}"


async def deliver_webhooks(pool: asyncpg.Pool, ctx: JobContext) -> int:
    """One batch: lease due deliveries, send them concurrently, record each outcome."""
    settings = ctx.settings
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_LEASE_DUE, ctx.as_of, ctx.tenant_id, ctx.batch_size, _LEASE)
    if not rows:
        return 0
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
        outcomes = await asyncio.gather(*(_send(client, row, settings.webhook_timeout_seconds) for row in rows))
    records: list[tuple[Any, ...]] = []
    for row, (code, error) in zip(rows, outcomes, strict=True):
        if error is None:
            status, next_at = "delivered", ctx.as_of
        elif row["attempts"] >= settings.webhook_max_attempts:
            status, next_at = "dead", ctx.as_of
        else:
            status, next_at = "pending", ctx.as_of + _backoff(row["attempts"], settings.webhook_backoff_seconds)
        WEBHOOK_DELIVERIES.labels(status if status != "pending" else "retry").inc()
        records.append((row["tenant_id"], row["delivery_id"], status, code, error, next_at))
    async with pool.acquire() as conn:
        await conn.executemany(_RECORD, records)
    return len(rows)


DELIVER_WEBHOOKS = Job(
    name="deliver-webhooks",
    description="Send due webhook deliveries; retry with exponential backoff; dead-letter after the last attempt",
    batch=deliver_webhooks,
    interval_seconds=5.0,
)
