"""The outbox (§3.8): every business change writes its event in the change's own transaction.

The same statement fans the event out to the tenant's matching webhook subscriptions, so a commit
carries both the event and its pending deliveries, and a rollback carries neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

__all__ = ["Event", "emit", "outbox_ctes"]


def outbox_ctes(*, tenant: str, event_type: str, occurred_at: str, data: str, when: str = "true") -> str:
    """The two CTEs (`ev`, `fan_out`) that write an event and its deliveries, as SQL expressions, for a
    caller that writes its event inside a larger statement (one round trip); `emit` uses them too."""
    return f"""ev AS (
    INSERT INTO events (tenant_id, type, occurred_at, data)
    SELECT {tenant}, {event_type}, coalesce({occurred_at}, now()), {data} WHERE {when}
    RETURNING event_id, created_at
), fan_out AS (
    INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, next_attempt_at)
    SELECT {tenant}, w.webhook_id, ev.event_id, ev.created_at
      FROM webhooks w, ev
     WHERE w.tenant_id = {tenant} AND w.active
       AND (cardinality(w.event_types) = 0 OR {event_type} = ANY (w.event_types))
)"""


_EMIT = f"""
WITH {outbox_ctes(tenant="$1", event_type="$2::text", occurred_at="$3::timestamptz", data="$4::jsonb")}
SELECT event_id::text FROM ev
"""

_to_builtins = msgspec.to_builtins


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope a subscriber receives: the body of every webhook delivery."""

    event_id: str
    type: str
    tenant_id: str
    occurred_at: datetime
    created_at: datetime
    data: dict[str, Any]


async def emit(
    conn: asyncpg.Connection, tenant_id: str, event_type: str, data: Any, *, occurred_at: datetime | None = None
) -> str:
    """Write one event (and its deliveries) inside the caller's transaction; returns the event id."""
    event_id: str = await conn.fetchval(_EMIT, tenant_id, event_type, occurred_at, _to_builtins(data))
    return event_id
