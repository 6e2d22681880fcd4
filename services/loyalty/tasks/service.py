"""Task rules (§5.5): the admin defines tasks; a member's completion takes the next free sequence slot
of the task's tenant-local period (the unique key on (member, task, period, sequence) makes a double
award impossible, also under concurrency), honours the cooldown, steps the streak, and credits the
points (× the best tier or plan multiplier) plus any streak bonus to available at once, in one entry
`points.task` keyed `task:{completion_id}` with one lot. Task points count as qualifying points.

Order inside a completion: the slot (waits for a concurrent holder of the same slot), then the member's
streak row for the task (serialises one member's completions of one task across periods), then the
ledger's lots and accounts (points.credit_available).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import asyncpg
import msgspec

from services.loyalty.members.repository import active_plan_tier, fetch_member, tenant_timezone
from services.loyalty.members.service import member_not_found
from services.loyalty.periods import expires_at
from services.loyalty.points import credit_available
from services.loyalty.program.service import program_of
from services.loyalty.tasks import repository, rules
from services.loyalty.tasks.schemas import (
    CODE_PATTERN,
    MAX_BPS,
    StreakBonus,
    StreakProgress,
    StreakRule,
    Task,
    TaskCompletion,
    TaskCompletionIn,
    TaskIn,
    TaskProgress,
)
from services.loyalty.tiers import standing
from services.loyalty.tiers.service import load_tiers
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = ["complete_task", "list_progress", "list_tasks", "put_task", "task_of"]

# A completion may be stamped a little ahead of our clock (the shop's clock drifts), not more.
FUTURE_SKEW = timedelta(minutes=5)
# The longest streak each reset rule allows: a bonus day beyond it could never be paid.
_RESET_MAX_DAY = {"weekly": 7, "monthly": 31}
_CODE = re.compile(CODE_PATTERN)


def task_of(row: asyncpg.Record) -> Task:
    return msgspec.convert({f: row[f] for f in Task.__struct_fields__}, Task)


def _invalid(detail: str) -> DomainError:
    return DomainError("invalid-task", 422, detail)


def _check_streak(data: TaskIn) -> None:
    """What the schema cannot say about streak bonuses (Litestar does not check list items)."""
    if data.streak is None:
        return
    if data.period == "lifetime":
        raise _invalid("a lifetime task is done once: it cannot have streak bonuses")
    days = [bonus.day for bonus in data.streak.bonuses]
    if len(set(days)) != len(days):
        raise _invalid("streak bonus days must be distinct")
    top = _RESET_MAX_DAY.get(data.streak.reset, 366)
    for bonus in data.streak.bonuses:
        if not 1 <= bonus.day <= top:
            raise _invalid(f"streak bonus day {bonus.day} is out of reach with reset {data.streak.reset} (1..{top})")
        if bonus.points < 1:
            raise _invalid("a streak bonus awards at least one point")


async def _check_multipliers(conn: asyncpg.Connection, tenant_id: str, data: TaskIn) -> None:
    """Keys are codes, values 0..100× (dict keys are not checked by Litestar); tier codes must exist.
    Plan codes are not checked: a task may name a plan defined later."""
    for field, table in (("tiers", data.multipliers.tiers), ("plans", data.multipliers.plans)):
        for code, bps in table.items():
            if not _CODE.match(code):
                raise _invalid(f"multipliers.{field}: {code[:70]!r} is not a code")
            if not 0 <= bps <= MAX_BPS:
                raise _invalid(f"multipliers.{field}.{code}: basis points between 0 and {MAX_BPS}")
    if data.multipliers.tiers:
        known = {tier.code for tier in await load_tiers(conn, tenant_id)}
        unknown = sorted(set(data.multipliers.tiers) - known)
        if unknown:
            raise DomainError("unknown-tier", 422, f"multipliers.tiers names tiers that do not exist: {unknown}")


async def put_task(conn: asyncpg.Connection, tenant_id: str, code: str, data: TaskIn) -> tuple[bool, Task]:
    """Create or replace a task: (created, task). An unchanged task keeps its version."""
    _check_streak(data)
    await _check_multipliers(conn, tenant_id, data)
    row = await repository.upsert_task(conn, tenant_id, code, msgspec.to_builtins(data))
    if row is None:
        current = await repository.fetch_task(conn, tenant_id, code)
        assert current is not None  # the upsert found it unchanged
        return False, task_of(current)
    return row["created"], task_of(row)


def _after_code(cursor: str | None) -> str:
    (after,) = decode_cursor(cursor, (str,)) if cursor else ("",)
    if cursor and not _CODE.match(after):
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    return str(after)


async def list_tasks(conn: asyncpg.Connection, tenant_id: str, limit: int, cursor: str | None) -> Page[Task]:
    """Every task (active or not), by code."""
    rows = await repository.list_tasks(conn, tenant_id, _after_code(cursor), limit + 1)
    items = [task_of(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > limit else None)


def _checked_occurrence(value: datetime) -> datetime:
    occurred_at = checked_time(value, "occurred_at")
    if occurred_at > datetime.now(UTC) + FUTURE_SKEW:
        raise DomainError("invalid-timestamp", 422, "occurred_at lies more than 5 minutes in the future")
    return occurred_at


def _active_task(row: asyncpg.Record, code: str) -> Task:
    if row["code"] is None:
        raise DomainError("task-not-found", 404, f"task {code} does not exist")
    task = task_of(row)
    if not task.active:
        raise DomainError("task-inactive", 409, f"task {code} is not active")
    return task


async def _take_slot(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task: Task, key: str, data: TaskCompletionIn, at: datetime
) -> int:
    """The first free sequence slot of the period, claimed; 409 `task-limit-reached` when all are taken.
    A slot taken by a concurrent completion is skipped once that one commits."""
    low = 1
    while True:
        slot = await repository.first_free_slot(conn, tenant_id, member_id, task.code, key, low, task.limit_per_period)
        if slot is None:
            raise DomainError(
                "task-limit-reached",
                409,
                f"task {task.code} was already completed {task.limit_per_period} time(s) in period {key}",
            )
        if await repository.take_slot(conn, tenant_id, data.completion_id, member_id, task.code, key, slot, at):
            return slot
        low = slot + 1


async def _member_codes(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, earned_tier: str | None, at: datetime
) -> tuple[list[str], list[str]]:
    """(the member's earned and plan-granted tier codes, the plans active at `at`): what multipliers key on."""
    tier_codes = [earned_tier or (await load_tiers(conn, tenant_id))[0].code]
    plan_tier = await active_plan_tier(conn, tenant_id, member_id, at)
    if plan_tier is not None:
        tier_codes.append(plan_tier["tier_code"])
    return tier_codes, await repository.active_plan_codes(conn, tenant_id, member_id, at)


def _multiplier(task: Task, codes: tuple[list[str], list[str]] | None) -> int:
    if codes is None:
        return rules.NEUTRAL_BPS
    return rules.multiplier_bps(msgspec.to_builtins(task.multipliers), *codes)


def _has_multipliers(task: Task) -> bool:
    return bool(task.multipliers.tiers or task.multipliers.plans)


async def _step_streak(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task: Task, row: asyncpg.Record, day: date
) -> tuple[int | None, int]:
    """(the completion's streak day, its bonus), the streak row (locked) updated when it grew."""
    if task.streak is None:
        return None, 0
    step = rules.step_streak(row["length"], row["last_day"], day, task.streak.reset)
    if not step.advanced:
        return step.streak_day, 0
    await repository.save_streak(conn, tenant_id, member_id, task.code, step.length, step.last_day)
    bonuses = [msgspec.to_builtins(bonus) for bonus in task.streak.bonuses]
    return step.streak_day, rules.bonus_for(bonuses, step.length)


async def _check_cooldown(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, task: Task, completion_id: str, at: datetime
) -> None:
    if not task.cooldown_seconds:
        return
    other = await repository.cooldown_conflict(
        conn, tenant_id, member_id, task.code, completion_id, at, task.cooldown_seconds
    )
    if other is not None:
        raise DomainError(
            "task-cooldown",
            409,
            f"task {task.code} was completed at {other.isoformat()}; "
            f"{task.cooldown_seconds} s must pass between two completions",
        )


async def complete_task(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, data: TaskCompletionIn
) -> TaskCompletion:
    """POST /v1/members/{id}/task-completions, inside run_idempotent (a refusal leaves nothing written)."""
    occurred_at = _checked_occurrence(data.occurred_at)
    context = await repository.completion_context(conn, tenant_id, member_id, data.task_code)
    assert context is not None  # the key's tenant exists
    if context["member_id"] is None:
        raise member_not_found(member_id)
    task = _active_task(context, data.task_code)
    timezone = context["timezone"]
    day = rules.local_day(occurred_at, timezone)
    key = rules.period_key(task.period, day)
    sequence = await _take_slot(conn, tenant_id, member_id, task, key, data, occurred_at)
    streak_row = await repository.lock_streak(conn, tenant_id, member_id, task.code)
    # under the streak lock every earlier completion of this member and task is committed and visible
    await _check_cooldown(conn, tenant_id, member_id, task, data.completion_id, occurred_at)
    streak_day, bonus = await _step_streak(conn, tenant_id, member_id, task, streak_row, day)
    codes = None
    if _has_multipliers(task):
        codes = await _member_codes(conn, tenant_id, member_id, context["earned_tier"], occurred_at)
    bps = _multiplier(task, codes)
    points = rules.apply_multiplier(task.points, bps)
    total = points + bonus
    program = program_of(context["config"], context["program_version"], context["program_updated_at"])
    expires = expires_at(program.config.expiry, occurred_at, timezone)
    entry_id = None
    if total:
        entry_id = await _award(conn, tenant_id, member_id, task, data, key, occurred_at, expires, total, bonus)
        await standing.add_qualifying(
            conn, tenant_id, member_id, total, occurred_at, "task", data.completion_id, entry_id
        )
        await standing.upgrade_if_qualified(conn, tenant_id, member_id, program.config, timezone, occurred_at)
    await repository.finish_completion(conn, tenant_id, data.completion_id, points, streak_day, bonus, entry_id)
    return TaskCompletion(
        completion_id=data.completion_id,
        member_id=member_id,
        task_code=task.code,
        occurred_at=occurred_at,
        period_key=key,
        sequence=sequence,
        multiplier_bps=bps,
        points=points,
        streak_day=streak_day,
        streak_bonus=bonus,
        total=total,
        expires_at=expires if total else None,
        entry_id=entry_id,
    )


async def _award(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    task: Task,
    data: TaskCompletionIn,
    key: str,
    occurred_at: datetime,
    expires: datetime | None,
    total: int,
    bonus: int,
) -> int:
    """One entry and one lot for points and bonus together; `points.earned`. The entry id."""
    reason = f"task {task.code}" + (f" with streak bonus {bonus}" if bonus else "")
    credited = await credit_available(
        conn,
        tenant_id,
        member_id,
        total,
        source="issued",
        earned_at=occurred_at,
        expires=expires,
        key=f"task:{data.completion_id}",
        kind="points.task",
        reason=reason,
        source_ref=f"task:{data.completion_id}",
    )
    await emit(
        conn,
        tenant_id,
        "points.earned",
        {
            "member_id": member_id,
            "source": "task",
            "points": total,
            "streak_bonus": bonus,
            "task_code": task.code,
            "completion_id": data.completion_id,
            "period_key": key,
            "debt_repaid": credited.debt_repaid,
            "expires_at": expires,
            "entry_id": credited.entry_id,
        },
        occurred_at=occurred_at,
    )
    return credited.entry_id


def _streak_view(rule: StreakRule | None, row: asyncpg.Record, today: date) -> StreakProgress | None:
    if rule is None:
        return None
    length = rules.current_length(row["streak_length"] or 0, row["streak_last_day"], today, rule.reset)
    bonuses = [msgspec.to_builtins(bonus) for bonus in rule.bonuses]
    upcoming = rules.next_bonus(bonuses, length)
    return StreakProgress(
        length=length,
        longest=row["streak_longest"] or 0,
        last_day=row["streak_last_day"],
        reset=rule.reset,
        next_bonus=msgspec.convert(upcoming, StreakBonus) if upcoming else None,
    )


def _progress_of(row: asyncpg.Record, bps: int, today: date, key: str, now: datetime, timezone: str) -> TaskProgress:
    task = task_of(row)
    completed = int(row["completed"])
    remaining = max(0, task.limit_per_period - completed)
    waits: list[datetime | None] = []
    if remaining == 0:
        waits.append(rules.next_period_start(task.period, today, timezone))
    if row["last_at"] is not None and task.cooldown_seconds:
        cooldown_end = row["last_at"] + timedelta(seconds=task.cooldown_seconds)
        if cooldown_end > now:
            waits.append(cooldown_end)
    never = None in waits
    upcoming = [wait for wait in waits if wait is not None]
    return TaskProgress(
        code=task.code,
        name=task.name,
        kind=task.kind,
        period=task.period,
        period_key=key,
        points=rules.apply_multiplier(task.points, bps),
        multiplier_bps=bps,
        limit_per_period=task.limit_per_period,
        completed=completed,
        remaining=remaining,
        available=not waits,
        next_allowed_at=None if never or not upcoming else max(upcoming),
        streak=_streak_view(task.streak, row, today),
    )


async def list_progress(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, limit: int, cursor: str | None
) -> Page[TaskProgress]:
    """GET /v1/members/{id}/tasks: the active tasks by code, each with this period's progress and streak."""
    after = _after_code(cursor)
    member = await fetch_member(conn, tenant_id, member_id)
    if member is None:
        raise member_not_found(member_id)
    now = datetime.now(UTC)
    timezone = await tenant_timezone(conn, tenant_id)
    today = rules.local_day(now, timezone)
    keys = (rules.period_key("day", today), rules.period_key("week", today), rules.period_key("month", today))
    rows = await repository.list_progress(conn, tenant_id, member_id, keys, after, limit + 1)
    codes = await _member_codes(conn, tenant_id, member_id, member["earned_tier"], now)
    items = []
    for row in rows[:limit]:
        task = task_of(row)
        key = rules.period_key(task.period, today)
        items.append(_progress_of(row, _multiplier(task, codes), today, key, now, timezone))
    return Page(items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > limit else None)
