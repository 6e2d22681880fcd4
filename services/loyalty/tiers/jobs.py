"""The tier evaluation job (§8, §5.2): downgrades after the grace days, and any upgrade missed.

Per member, as of `as_of`: the qualifying points in the programme's window decide the qualified tier.
Below the earned tier, the first run sets `downgrade_due_at = as_of + downgrade_grace_days`; a run at
or after that time downgrades (`one_down`: one rank; `to_qualified`: to the qualified tier) with history
and `member.tier_changed`. Qualifying again clears the due time; reaching a higher tier upgrades.
Each member is evaluated once per `as_of` (`tier_evaluated_at`, set in the same transaction), so a
re-run changes nothing and a run killed between batches resumes with the members not yet evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.loyalty.members.repository import tenant_timezone
from services.loyalty.program.schemas import ProgramConfig
from services.loyalty.program.service import load_program
from services.loyalty.tiers import repository
from services.loyalty.tiers.schemas import Tier
from services.loyalty.tiers.service import load_tiers
from services.loyalty.tiers.standing import change_tier, qualified_tier, qualifying_total
from shared.jobs import Job, JobContext, transactional

__all__ = ["EVALUATE_TIERS", "evaluate_member_tiers"]


@dataclass(frozen=True)
class _Tenant:
    """What the evaluation needs of a tenant, read once per batch."""

    config: ProgramConfig
    timezone: str
    tiers: list[Tier]


async def _tenant(conn: asyncpg.Connection, tenant_id: str) -> _Tenant:
    config = (await load_program(conn, tenant_id)).config
    return _Tenant(config, await tenant_timezone(conn, tenant_id), await load_tiers(conn, tenant_id))


def _downgrade_target(tenant: _Tenant, current: Tier, qualified: Tier) -> Tier:
    if tenant.config.downgrade_mode == "to_qualified":
        return qualified
    return tenant.tiers[tenant.tiers.index(current) - 1]  # one_down: the next rank below


async def _evaluate(conn: asyncpg.Connection, tenant: _Tenant, row: asyncpg.Record, as_of: datetime) -> None:
    tenant_id, member_id = row["tenant_id"], row["member_id"]
    tiers = tenant.tiers
    earned_code, points = await qualifying_total(conn, tenant_id, member_id, tenant.config, tenant.timezone, as_of)
    by_code = {tier.code: tier for tier in tiers}
    current = by_code.get(earned_code, tiers[0]) if earned_code else tiers[0]
    qualified = qualified_tier(tiers, points)
    if qualified.rank > current.rank:
        await change_tier(conn, tenant_id, member_id, tiers, current, qualified, "upgrade", as_of)
    elif qualified.rank == current.rank:
        if row["downgrade_due_at"] is not None:
            await repository.set_downgrade_due(conn, tenant_id, member_id, None)
    else:
        due = row["downgrade_due_at"] or as_of + timedelta(days=tenant.config.downgrade_grace_days)
        if due <= as_of:
            target = _downgrade_target(tenant, current, qualified)
            await change_tier(conn, tenant_id, member_id, tiers, current, target, "downgrade", as_of)
        elif row["downgrade_due_at"] is None:
            await repository.set_downgrade_due(conn, tenant_id, member_id, due)


async def evaluate_member_tiers(conn: asyncpg.Connection, ctx: JobContext) -> int:
    """Evaluate at most `ctx.batch_size` members not yet evaluated as of `ctx.as_of`; returns how many."""
    rows = await repository.due_for_evaluation(conn, ctx.as_of, ctx.tenant_id, ctx.batch_size)
    tenants: dict[str, _Tenant] = {}
    for row in rows:
        tenant_id = row["tenant_id"]
        if tenant_id not in tenants:
            tenants[tenant_id] = await _tenant(conn, tenant_id)
        await _evaluate(conn, tenants[tenant_id], row, ctx.as_of)
    if rows:
        await repository.mark_evaluated(
            conn, ctx.as_of, [row["tenant_id"] for row in rows], [row["member_id"] for row in rows]
        )
    return len(rows)


EVALUATE_TIERS = Job(
    name="evaluate-tiers",
    description="Downgrade members below their tier's threshold after the grace days (one_down or "
    "to_qualified); upgrade any who qualify higher",
    batch=transactional(evaluate_member_tiers),
    interval_seconds=3600.0,
)
