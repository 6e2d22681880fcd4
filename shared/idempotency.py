"""Idempotent writes (§3.3): a business id or `Idempotency-Key` claimed in the write's own transaction.

The first request with a key claims it and runs; its outcome (success or business refusal) is stored
with the claim and committed with the write. A retry with the same body gets the stored outcome back,
byte for byte; the same key with a different body is 409 `idempotency-conflict`. A refusal is pinned:
its writes are rolled back to a savepoint, only the claim and the refusal are kept. Transient failures
(serialization, timeouts, crashes) roll everything back, claim included, so a retry runs again.

`run_idempotent_decided` is the same contract for a write that can decide its outcome before writing
anything (reads and checks in `decide`, writes in `apply`): the claim carries the outcome in the same
statement, so it needs no savepoint and no second write of the claim (two round trips fewer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from shared.errors import PROBLEM_MEDIA_TYPE, DomainError

__all__ = ["Outcome", "TRANSIENT_PROBLEMS", "request_hash", "run_idempotent", "run_idempotent_decided"]

TRANSIENT_PROBLEMS = frozenset({"concurrent-update", "timeout"})

_CLAIM = """
INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING true
"""

# The claim and its outcome at once (run_idempotent_decided).
_CLAIM_DECIDED = """
INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, status_code, response)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING true
"""

_STORED = """
SELECT request_hash, status_code, response FROM idempotency_keys
 WHERE tenant_id = $1 AND scope = $2 AND key = $3
"""

_RECORD = """
UPDATE idempotency_keys SET status_code = $4, response = $5
 WHERE tenant_id = $1 AND scope = $2 AND key = $3
"""

_encode = msgspec.json.Encoder().encode


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    body: bytes
    media_type: str
    replayed: bool


def request_hash(body: Any) -> bytes:
    return hashlib.sha256(body if isinstance(body, bytes) else _encode(body)).digest()


async def run_idempotent(
    conn: asyncpg.Connection,
    *,
    tenant_id: str,
    scope: str,
    key: str,
    body: Any,
    run: Callable[[], Awaitable[tuple[int, Any]]],
    instance: str | None = None,
) -> Outcome:
    """Run `run` once per (tenant, scope, key); `conn` must be inside the request's transaction."""
    digest = request_hash(body)
    claimed = await conn.fetchval(_CLAIM, tenant_id, scope, key, digest)
    if not claimed:
        return await _replay(conn, tenant_id, scope, key, digest)
    try:
        async with conn.transaction():  # a savepoint: a refusal undoes the write, keeps the claim
            status, result = await run()
    except DomainError as refusal:
        if refusal.type in TRANSIENT_PROBLEMS:
            raise
        problem = _encode(refusal.problem(instance))
        await conn.execute(_RECORD, tenant_id, scope, key, refusal.status, problem)
        return Outcome(status=refusal.status, body=problem, media_type=PROBLEM_MEDIA_TYPE, replayed=False)
    payload = _encode(result)
    await conn.execute(_RECORD, tenant_id, scope, key, status, payload)
    return Outcome(status=status, body=payload, media_type="application/json", replayed=False)


async def _replay(conn: asyncpg.Connection, tenant_id: str, scope: str, key: str, digest: bytes) -> Outcome:
    """The stored outcome of a key someone else claimed (409 when their body was another)."""
    stored = await conn.fetchrow(_STORED, tenant_id, scope, key)
    assert stored is not None  # the claimer committed before our insert could conflict
    if stored["request_hash"] != digest:
        raise DomainError("idempotency-conflict", 409, f"{scope} {key} was already used with another body")
    status = stored["status_code"]
    media = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return Outcome(status=status, body=bytes(stored["response"]), media_type=media, replayed=True)


async def run_idempotent_decided(
    conn: asyncpg.Connection,
    *,
    tenant_id: str,
    scope: str,
    key: str,
    body: Any,
    decide: Callable[[], Awaitable[tuple[int, Any]]],
    apply: Callable[[], Awaitable[None]],
    instance: str | None = None,
) -> Outcome:
    """`run_idempotent` for a write whose outcome is known before it writes: `decide` reads and checks
    (it must write nothing the claim could not keep: a refusal it raises is stored with the claim),
    `apply` writes what was decided. A key already claimed replays its outcome and applies nothing.

    `apply` must not refuse: a `DomainError` from it rolls the whole transaction back, claim included
    (as a transient failure does), since no savepoint separates the claim from the writes.
    `conn` must be inside the request's transaction."""
    digest = request_hash(body)
    try:
        status, result = await decide()
    except DomainError as refusal:
        if refusal.type in TRANSIENT_PROBLEMS:
            raise
        problem = _encode(refusal.problem(instance))
        if not await conn.fetchval(_CLAIM_DECIDED, tenant_id, scope, key, digest, refusal.status, problem):
            return await _replay(conn, tenant_id, scope, key, digest)
        return Outcome(status=refusal.status, body=problem, media_type=PROBLEM_MEDIA_TYPE, replayed=False)
    payload = _encode(result)
    if not await conn.fetchval(_CLAIM_DECIDED, tenant_id, scope, key, digest, status, payload):
        return await _replay(conn, tenant_id, scope, key, digest)
    await apply()
    return Outcome(status=status, body=payload, media_type="application/json", replayed=False)
