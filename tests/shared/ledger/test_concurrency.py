"""Many connections at once: nothing overdrawn, no deadlock, every success accounted for (§4.1)."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg

from shared.errors import DomainError
from shared.ledger import Leg, balances, post_entry, reverse_entry, verify
from tests.shared.ledger.conftest import PROGRAM, LedgerTenant


async def _connections(ledger: LedgerTenant, count: int) -> list[asyncpg.pool.PoolConnectionProxy]:
    return [await ledger.pool.acquire() for _ in range(count)]


async def test_100_spends_of_10_against_500_from_40_connections(ledger: LedgerTenant) -> None:
    member = await ledger.member("hot")
    await ledger.earn(member, 500)
    conns = await _connections(ledger, 40)
    start = asyncio.Event()
    outcomes: list[str] = []

    async def spend(i: int) -> None:
        conn = conns[i % len(conns)]
        await start.wait()
        try:
            async with conn.transaction():
                await post_entry(
                    conn,
                    ledger.tenant_id,
                    kind="redeem",
                    idempotency_key=f"spend-{i}",
                    legs=[Leg(member, 10), Leg(PROGRAM, -10)],
                )
            outcomes.append("ok")
        except DomainError as refusal:
            outcomes.append(refusal.type)

    # 40 connections, 100 spends: each connection runs its share back to back, all start together.
    async def lane(lane_id: int) -> None:
        for i in range(lane_id, 100, len(conns)):
            await spend(i)

    tasks = [asyncio.create_task(lane(n)) for n in range(len(conns))]
    start.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for conn in conns:
            await ledger.pool.release(conn)

    assert outcomes.count("ok") == 50
    assert outcomes.count("insufficient-balance") == 50
    async with ledger.pool.acquire() as conn:
        found = (await balances(conn, ledger.tenant_id, [member]))[member]
        report = await verify(conn, ledger.tenant_id)
    assert (found.balance, found.debits_posted, found.credits_posted) == (0, 500, 500)
    assert report.ok, report.violations


async def test_mixed_concurrent_workload_keeps_every_invariant(ledger: LedgerTenant) -> None:
    members = [await ledger.member(f"m{i}") for i in range(4)]
    for code in members:
        await ledger.earn(code, 100)
    conns = await _connections(ledger, 32)
    rng = random.Random(7)
    earned: list[int] = []  # entry ids that may be reversed
    counts = {"ok": 0, "insufficient-balance": 0, "already-reversed": 0}

    async def worker(conn: asyncpg.Connection, seed: int) -> None:
        local = random.Random(seed)
        for _ in range(25):
            op = local.choice(["earn", "spend", "transfer", "transfer", "reverse"])
            a, b = local.sample(members, 2)
            amount = local.randint(1, 40)
            posted = None
            try:
                async with conn.transaction():
                    if op == "earn":
                        posted = await post_entry(
                            conn,
                            ledger.tenant_id,
                            kind="earn",
                            idempotency_key=uuid.uuid4().hex,
                            legs=[Leg(PROGRAM, amount), Leg(a, -amount)],
                        )
                    elif op == "spend":
                        await post_entry(
                            conn,
                            ledger.tenant_id,
                            kind="redeem",
                            idempotency_key=uuid.uuid4().hex,
                            legs=[Leg(a, amount), Leg(PROGRAM, -amount)],
                        )
                    elif op == "transfer":  # both accounts tracked: lock order is what prevents deadlock
                        await post_entry(
                            conn,
                            ledger.tenant_id,
                            kind="transfer",
                            idempotency_key=uuid.uuid4().hex,
                            legs=[Leg(a, amount), Leg(b, -amount)],
                        )
                    elif earned:
                        await reverse_entry(
                            conn, ledger.tenant_id, local.choice(earned), idempotency_key=uuid.uuid4().hex
                        )
                counts["ok"] += 1
                if posted is not None:  # visible to other workers only once committed
                    earned.append(posted.entry_id)
            except DomainError as refusal:
                assert refusal.type in counts, refusal.type  # never a deadlock or serialization failure
                counts[refusal.type] += 1

    try:
        await asyncio.gather(*(worker(conn, rng.randrange(10**9)) for conn in conns))
    finally:
        for conn in conns:
            await ledger.pool.release(conn)

    async with ledger.pool.acquire() as conn:
        report = await verify(conn, ledger.tenant_id)
        found = await balances(conn, ledger.tenant_id, [*members, PROGRAM])
    assert report.ok, report.violations
    assert counts["ok"] > 400
    assert all(found[code].balance >= 0 for code in members)
    # Points exist only where the programme issued them.
    assert sum(found[code].balance for code in members) == found[PROGRAM].balance


async def test_same_key_from_two_connections_at_once_is_one_entry(ledger: LedgerTenant) -> None:
    member = await ledger.member("twin")
    legs = [Leg(PROGRAM, 15), Leg(member, -15)]
    first, second = await _connections(ledger, 2)
    try:
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await tx2.start()
        posted1 = await post_entry(first, ledger.tenant_id, kind="earn", idempotency_key="dup", legs=legs)
        # The second waits on the key's unique index until the first commits, then sees its entry.
        waiting = asyncio.create_task(
            post_entry(second, ledger.tenant_id, kind="earn", idempotency_key="dup", legs=legs)
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await tx1.commit()
        posted2 = await waiting
        await tx2.commit()
    finally:
        await ledger.pool.release(first)
        await ledger.pool.release(second)
    assert posted1.entry_id == posted2.entry_id
    assert (posted1.replayed, posted2.replayed) == (False, True)
    async with ledger.pool.acquire() as conn:
        entries = await conn.fetchval(
            "SELECT count(*) FROM entries WHERE tenant_id = $1 AND idempotency_key = 'dup'", ledger.tenant_id
        )
        assert (await balances(conn, ledger.tenant_id, [member]))[member].balance == 15
    assert entries == 1


async def test_same_key_many_connections_gather(ledger: LedgerTenant) -> None:
    member = await ledger.member("crowd")
    legs = [Leg(PROGRAM, 5), Leg(member, -5)]
    conns = await _connections(ledger, 16)

    async def post(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            return (await post_entry(conn, ledger.tenant_id, kind="earn", idempotency_key="same", legs=legs)).entry_id

    try:
        ids = await asyncio.gather(*(post(conn) for conn in conns))
    finally:
        for conn in conns:
            await ledger.pool.release(conn)
    assert len(set(ids)) == 1
    async with ledger.pool.acquire() as conn:
        assert (await balances(conn, ledger.tenant_id, [member]))[member].balance == 5
