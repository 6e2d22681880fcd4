"""SQL of the earning rules."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

__all__ = ["fetch_rule", "granted_today", "list_rules", "upsert_rule"]

_COLUMNS = (
    "code, name, kind, condition, multiplier_bps, points_per_unit, cap_per_order, cap_per_member_day, "
    "valid_from, valid_until, active, version, updated_at"
)

# An unchanged rule keeps its version; `created` tells 201 from 200.
_UPSERT = f"""
INSERT INTO earning_rules AS r (tenant_id, code, name, condition, kind, multiplier_bps, points_per_unit,
                                cap_per_order, cap_per_member_day, valid_from, valid_until, active)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, condition = EXCLUDED.condition, kind = EXCLUDED.kind,
       multiplier_bps = EXCLUDED.multiplier_bps, points_per_unit = EXCLUDED.points_per_unit,
       cap_per_order = EXCLUDED.cap_per_order, cap_per_member_day = EXCLUDED.cap_per_member_day,
       valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until, active = EXCLUDED.active,
       version = r.version + 1, updated_at = now()
 WHERE (r.name, r.condition, r.kind, r.multiplier_bps, r.points_per_unit, r.cap_per_order, r.cap_per_member_day,
        r.valid_from, r.valid_until, r.active)
       IS DISTINCT FROM
       (EXCLUDED.name, EXCLUDED.condition, EXCLUDED.kind, EXCLUDED.multiplier_bps, EXCLUDED.points_per_unit,
        EXCLUDED.cap_per_order, EXCLUDED.cap_per_member_day, EXCLUDED.valid_from, EXCLUDED.valid_until,
        EXCLUDED.active)
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""

_FETCH = f"SELECT {_COLUMNS} FROM earning_rules WHERE tenant_id = $1 AND code = $2"

_LIST = f"""
SELECT {_COLUMNS} FROM earning_rules
 WHERE tenant_id = $1 AND code COLLATE "C" > $2
 ORDER BY code COLLATE "C"
 LIMIT $3
"""

# What each rule ($3) already added to the member's orders paid on tenant-local day $4.
_GRANTED_TODAY = """
SELECT rule_code, sum(points)::bigint AS points FROM order_rule_points
 WHERE tenant_id = $1 AND member_id = $2 AND rule_code = ANY($3::text[]) AND local_day = $4
 GROUP BY rule_code
"""


async def upsert_rule(
    conn: asyncpg.Connection, tenant_id: str, code: str, fields: dict[str, Any]
) -> asyncpg.Record | None:
    """The rule when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(
        _UPSERT,
        tenant_id,
        code,
        fields["name"],
        fields["condition"],
        fields["kind"],
        fields["multiplier_bps"],
        fields["points_per_unit"],
        fields["cap_per_order"],
        fields["cap_per_member_day"],
        fields["valid_from"],
        fields["valid_until"],
        fields["active"],
    )


async def fetch_rule(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH, tenant_id, code)


async def list_rules(conn: asyncpg.Connection, tenant_id: str, after: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, tenant_id, after, limit)


async def granted_today(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, rule_codes: list[str], local_day: date
) -> dict[str, int]:
    rows = await conn.fetch(_GRANTED_TODAY, tenant_id, member_id, rule_codes, local_day)
    return {row["rule_code"]: row["points"] for row in rows}
