"""SQL of the tasks, their completions and the members' streaks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

__all__ = [
    "active_plan_codes",
    "completion_context",
    "cooldown_conflict",
    "fetch_task",
    "finish_completion",
    "first_free_slot",
    "list_progress",
    "list_tasks",
    "lock_streak",
    "save_streak",
    "take_slot",
    "upsert_task",
]

_COLUMNS = (
    "code, name, kind, points, period, limit_per_period, cooldown_seconds, streak, multipliers, active, "
    "version, updated_at"
)

# An unchanged task keeps its version; `created` tells 201 from 200.
_UPSERT = f"""
INSERT INTO tasks AS t (tenant_id, code, name, kind, points, period, limit_per_period, cooldown_seconds,
                        streak, multipliers, active)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, kind = EXCLUDED.kind, points = EXCLUDED.points, period = EXCLUDED.period,
       limit_per_period = EXCLUDED.limit_per_period, cooldown_seconds = EXCLUDED.cooldown_seconds,
       streak = EXCLUDED.streak, multipliers = EXCLUDED.multipliers, active = EXCLUDED.active,
       version = t.version + 1, updated_at = now()
 WHERE (t.name, t.kind, t.points, t.period, t.limit_per_period, t.cooldown_seconds, t.streak, t.multipliers,
        t.active)
       IS DISTINCT FROM
       (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.points, EXCLUDED.period, EXCLUDED.limit_per_period,
        EXCLUDED.cooldown_seconds, EXCLUDED.streak, EXCLUDED.multipliers, EXCLUDED.active)
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""

_FETCH = f"SELECT {_COLUMNS} FROM tasks WHERE tenant_id = $1 AND code = $2"

# What a completion starts from, in one statement: the tenant's time zone, the member (NULL id: none),
# the task's columns (NULL code: none) and the programme (NULL config: the defaults).
_CONTEXT = f"""
SELECT t.timezone, m.member_id, m.earned_tier, {", ".join("k." + c for c in _COLUMNS.split(", "))},
       p.config, p.version AS program_version, p.updated_at AS program_updated_at
  FROM tenants t
  LEFT JOIN members m ON m.tenant_id = t.tenant_id AND m.member_id = $2
  LEFT JOIN tasks k ON k.tenant_id = t.tenant_id AND k.code = $3
  LEFT JOIN programs p ON p.tenant_id = t.tenant_id
 WHERE t.tenant_id = $1
"""

_LIST = f"""
SELECT {_COLUMNS} FROM tasks
 WHERE tenant_id = $1 AND code > $2
 ORDER BY code
 LIMIT $3
"""

# The lowest slot in [$5, $6] this period has not used (as far as committed rows show).
_FIRST_FREE = """
SELECT s FROM generate_series($5::integer, $6::integer) s
 WHERE NOT EXISTS (SELECT 1 FROM task_completions c
                    WHERE c.tenant_id = $1 AND c.member_id = $2 AND c.task_code = $3 AND c.period_key = $4
                      AND c.sequence = s)
 ORDER BY s
 LIMIT 1
"""

# A concurrent holder of the slot makes this wait for its commit, then do nothing: no row, no error.
_TAKE_SLOT = """
INSERT INTO task_completions (tenant_id, completion_id, member_id, task_code, period_key, sequence, occurred_at, points)
VALUES ($1, $2, $3, $4, $5, $6, $7, 0)
ON CONFLICT ON CONSTRAINT task_completions_once_per_slot DO NOTHING
RETURNING sequence
"""

# Creates the streak row on first use and locks it either way: one member's completions of one task
# serialise here (cooldown across periods, streak arithmetic).
_LOCK_STREAK = """
INSERT INTO streaks AS s (tenant_id, member_id, task_code) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, member_id, task_code) DO UPDATE SET updated_at = s.updated_at
RETURNING length, longest, last_day
"""

_SAVE_STREAK = """
UPDATE streaks SET length = $4, longest = greatest(longest, $4), last_day = $5, updated_at = now()
 WHERE tenant_id = $1 AND member_id = $2 AND task_code = $3
"""

# Another completion less than $6 seconds before or after $5.
_COOLDOWN = """
SELECT occurred_at FROM task_completions
 WHERE tenant_id = $1 AND member_id = $2 AND task_code = $3 AND completion_id <> $4
   AND occurred_at > $5::timestamptz - $6::integer * interval '1 second'
   AND occurred_at < $5::timestamptz + $6::integer * interval '1 second'
 ORDER BY occurred_at DESC
 LIMIT 1
"""

_FINISH = """
UPDATE task_completions SET points = $3, streak_day = $4, streak_bonus = $5, entry_id = $6
 WHERE tenant_id = $1 AND completion_id = $2
"""

_PLAN_CODES = """
SELECT DISTINCT plan_code FROM subscriptions
 WHERE tenant_id = $1 AND member_id = $2 AND status = 'active'
   AND starts_at <= $3 AND (ends_at IS NULL OR ends_at > $3)
"""

# Active tasks by code with the member's completions in each task's current period ($3..$5: the day,
# week and month keys), the latest completion (cooldown) and the streak row.
_PROGRESS = """
SELECT t.code, t.name, t.kind, t.points, t.period, t.limit_per_period, t.cooldown_seconds, t.streak,
       t.multipliers, t.active, t.version, t.updated_at,
       (SELECT count(*) FROM task_completions c
         WHERE c.tenant_id = t.tenant_id AND c.member_id = $2 AND c.task_code = t.code
           AND c.period_key = CASE t.period WHEN 'day' THEN $3 WHEN 'week' THEN $4 WHEN 'month' THEN $5
                                            ELSE 'lifetime' END) AS completed,
       (SELECT max(c.occurred_at) FROM task_completions c
         WHERE c.tenant_id = t.tenant_id AND c.member_id = $2 AND c.task_code = t.code) AS last_at,
       s.length AS streak_length, s.longest AS streak_longest, s.last_day AS streak_last_day
  FROM tasks t
  LEFT JOIN streaks s ON s.tenant_id = t.tenant_id AND s.member_id = $2 AND s.task_code = t.code
 WHERE t.tenant_id = $1 AND t.active AND t.code > $6
 ORDER BY t.code
 LIMIT $7
"""


async def upsert_task(
    conn: asyncpg.Connection, tenant_id: str, code: str, values: dict[str, Any]
) -> asyncpg.Record | None:
    """The task when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(
        _UPSERT,
        tenant_id,
        code,
        values["name"],
        values["kind"],
        values["points"],
        values["period"],
        values["limit_per_period"],
        values["cooldown_seconds"],
        values["streak"],
        values["multipliers"],
        values["active"],
    )


async def fetch_task(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id, code)


async def completion_context(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task_code: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(_CONTEXT, tenant_id, member_id, task_code)


async def list_tasks(conn: asyncpg.Connection, tenant_id: str, after_code: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, tenant_id, after_code, limit)


async def first_free_slot(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task_code: str, key: str, low: int, high: int
) -> int | None:
    value = await conn.fetchval(_FIRST_FREE, tenant_id, member_id, task_code, key, low, high)
    return None if value is None else int(value)


async def take_slot(
    conn: asyncpg.Connection,
    tenant_id: str,
    completion_id: str,
    member_id: str,
    task_code: str,
    key: str,
    sequence: int,
    occurred_at: datetime,
) -> bool:
    """Claim the slot (True), or False if another completion holds it."""
    taken = await conn.fetchval(_TAKE_SLOT, tenant_id, completion_id, member_id, task_code, key, sequence, occurred_at)
    return taken is not None


async def lock_streak(conn: asyncpg.Connection, tenant_id: str, member_id: str, task_code: str) -> asyncpg.Record:
    row = await conn.fetchrow(_LOCK_STREAK, tenant_id, member_id, task_code)
    assert row is not None  # both branches of the upsert return the row
    return row


async def save_streak(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task_code: str, length: int, last_day: date
) -> None:
    await conn.execute(_SAVE_STREAK, tenant_id, member_id, task_code, length, last_day)


async def cooldown_conflict(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    task_code: str,
    completion_id: str,
    occurred_at: datetime,
    seconds: int,
) -> datetime | None:
    """The time of another completion within `seconds` of `occurred_at`, if any."""
    value: datetime | None = await conn.fetchval(
        _COOLDOWN, tenant_id, member_id, task_code, completion_id, occurred_at, seconds
    )
    return value


async def finish_completion(
    conn: asyncpg.Connection,
    tenant_id: str,
    completion_id: str,
    points: int,
    streak_day: int | None,
    streak_bonus: int,
    entry_id: int | None,
) -> None:
    await conn.execute(_FINISH, tenant_id, completion_id, points, streak_day, streak_bonus, entry_id)


async def active_plan_codes(conn: asyncpg.Connection, tenant_id: str, member_id: str, as_of: datetime) -> list[str]:
    return [row["plan_code"] for row in await conn.fetch(_PLAN_CODES, tenant_id, member_id, as_of)]


async def list_progress(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    keys: tuple[str, str, str],
    after_code: str,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(_PROGRESS, tenant_id, member_id, *keys, after_code, limit)
