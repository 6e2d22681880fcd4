"""SQL of members, bindings, the invite tree (closure table `referral_paths`), distributors and rankings."""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = [
    "activate_distributor",
    "ancestors",
    "bindings_on_local_day",
    "completed_withdrawals",
    "fetch_level",
    "fetch_member",
    "has_invitees",
    "insert_binding",
    "insert_member",
    "is_in_ancestry",
    "leaderboard_commission",
    "leaderboard_invites",
    "leaderboard_team_sales",
    "level_exists",
    "list_levels",
    "lock_members",
    "lock_tree_exclusive",
    "lock_tree_shared",
    "member_by_invite_code",
    "member_exists",
    "rewrite_descendant_paths",
    "rewrite_paths",
    "set_distributor",
    "set_inviter",
    "team_counts",
    "team_page",
    "tenant_timezone",
    "upsert_level",
]

_MEMBER_COLUMNS = """member_id, invite_code, registered_at, device_id, ip, inviter_id, bound_at, binding_flagged,
       flag_reason, distributor_status, distributor_level, distributor_since, order_count, paid_amount, version"""

# ON CONFLICT without a target covers both the key and the invite code: no row back means either the
# member exists (the caller reads it) or the random code collided (the caller draws another).
_INSERT_MEMBER = f"""
INSERT INTO members (tenant_id, member_id, invite_code, registered_at, device_id, ip)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING {_MEMBER_COLUMNS}
"""

_FETCH_MEMBER = f"SELECT {_MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND member_id = $2"

_MEMBER_EXISTS = "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2)"

_BY_INVITE_CODE = "SELECT member_id FROM members WHERE tenant_id = $1 AND invite_code = $2"

# Invitee and inviter in one statement, in key order, so two bindings never deadlock on each other.
# NO KEY UPDATE: serialises bindings without blocking the foreign-key checks of orders and items.
_LOCK_MEMBERS = f"""
SELECT {_MEMBER_COLUMNS} FROM members
 WHERE tenant_id = $1 AND member_id = ANY ($2::text[])
 ORDER BY member_id
   FOR NO KEY UPDATE
"""

_HAS_INVITEES = """
SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND inviter_id = $2)
"""

# The tenant's tree lock (transaction-scoped): bindings of members without invitees share it, a
# rebinding of a member with a team takes it alone (it rewrites its descendants' paths and could
# close a cycle with another such rebinding).
_LOCK_TREE_SHARED = "SELECT pg_advisory_xact_lock_shared(hashtextextended('referral-tree:' || $1, 0))"
_LOCK_TREE_EXCLUSIVE = "SELECT pg_advisory_xact_lock(hashtextextended('referral-tree:' || $1, 0))"

# Is `$3` the member `$2` or one of its ancestors, at any depth? UNION (not ALL) stops on a cycle.
_IN_ANCESTRY = """
WITH RECURSIVE up (member_id) AS (
    SELECT $2::text
    UNION
    SELECT m.inviter_id
      FROM members m JOIN up ON m.member_id = up.member_id
     WHERE m.tenant_id = $1 AND m.inviter_id IS NOT NULL
)
SELECT EXISTS (SELECT 1 FROM up WHERE member_id = $3)
"""

# Bindings to an inviter on the tenant-local calendar day of `$3`.
_BINDINGS_ON_LOCAL_DAY = """
WITH day AS (
    SELECT date_trunc('day', $3::timestamptz AT TIME ZONE t.timezone) AT TIME ZONE t.timezone AS starts,
           (date_trunc('day', $3::timestamptz AT TIME ZONE t.timezone) + interval '1 day') AT TIME ZONE t.timezone AS ends
      FROM tenants t WHERE t.tenant_id = $1
)
SELECT count(*) FROM bindings b, day
 WHERE b.tenant_id = $1 AND b.inviter_id = $2 AND b.occurred_at >= day.starts AND b.occurred_at < day.ends
"""

_SET_INVITER = f"""
UPDATE members SET inviter_id = $3, bound_at = $4, binding_flagged = $5, flag_reason = $6,
                   version = version + 1, updated_at = now()
 WHERE tenant_id = $1 AND member_id = $2
RETURNING {_MEMBER_COLUMNS}
"""

_INSERT_BINDING = """
INSERT INTO bindings (tenant_id, invitee_id, inviter_id, previous_inviter_id, occurred_at, mode, device_id, ip,
                      flagged, flag_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

# The invitee's ancestors (depth 1..3) become the inviter and the inviter's first two: rows that
# change are updated, rows beyond the new chain deleted, in one statement (disjoint rows, no order).
_REWRITE_PATHS = """
WITH fresh AS (
    SELECT 1::smallint AS depth, $3::text AS ancestor_id
    UNION ALL
    SELECT (p.depth + 1)::smallint, p.ancestor_id
      FROM referral_paths p
     WHERE p.tenant_id = $1 AND p.member_id = $3 AND p.depth <= 2
), stale AS (
    DELETE FROM referral_paths p
     WHERE p.tenant_id = $1 AND p.member_id = $2 AND p.depth > (SELECT max(depth) FROM fresh)
)
INSERT INTO referral_paths AS p (tenant_id, member_id, depth, ancestor_id)
SELECT $1, $2, depth, ancestor_id FROM fresh
ON CONFLICT (tenant_id, member_id, depth) DO UPDATE SET ancestor_id = EXCLUDED.ancestor_id
 WHERE p.ancestor_id IS DISTINCT FROM EXCLUDED.ancestor_id
"""

# The invitee's team one and two levels down: their ancestors above the invitee follow its new
# ancestors (run after _REWRITE_PATHS, whose rows it reads). Level-3 invitees keep theirs: the
# invitee itself is their deepest ancestor.
_REWRITE_DESCENDANT_PATHS = """
WITH below AS (
    SELECT member_id, depth FROM referral_paths
     WHERE tenant_id = $1 AND ancestor_id = $2 AND depth <= 2
), fresh AS (
    SELECT b.member_id, (b.depth + a.depth)::smallint AS depth, a.ancestor_id
      FROM below b
      JOIN referral_paths a ON a.tenant_id = $1 AND a.member_id = $2 AND b.depth + a.depth <= 3
), stale AS (
    DELETE FROM referral_paths p
     USING below b
     WHERE p.tenant_id = $1 AND p.member_id = b.member_id AND p.depth > b.depth
       AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.member_id = p.member_id AND f.depth = p.depth)
)
INSERT INTO referral_paths AS p (tenant_id, member_id, depth, ancestor_id)
SELECT $1, member_id, depth, ancestor_id FROM fresh
ON CONFLICT (tenant_id, member_id, depth) DO UPDATE SET ancestor_id = EXCLUDED.ancestor_id
 WHERE p.ancestor_id IS DISTINCT FROM EXCLUDED.ancestor_id
"""

_ANCESTORS = """
SELECT depth, ancestor_id FROM referral_paths WHERE tenant_id = $1 AND member_id = $2 ORDER BY depth
"""

_TEAM_COUNTS = """
SELECT depth, count(*) AS members FROM referral_paths WHERE tenant_id = $1 AND ancestor_id = $2 GROUP BY depth
"""

_COMPLETED_WITHDRAWALS = """
SELECT coalesce(sum(amount), 0)::bigint FROM withdrawals
 WHERE tenant_id = $1 AND member_id = $2 AND status = 'completed'
"""

# The page is cut from one range of referral_paths_team first, then each invitee is one primary-key
# lookup: no OFFSET, no COUNT. Joining before the LIMIT let a custom plan merge-join members_pkey from
# the tenant's first member (2,622 buffers for a first page against 157: docs/benchmarks.md).
_TEAM_PAGE = """
SELECT m.member_id, m.bound_at AS joined_at, m.order_count, m.paid_amount
  FROM (SELECT p.member_id FROM referral_paths p
         WHERE p.tenant_id = $1 AND p.ancestor_id = $2 AND p.depth = $3 AND p.member_id > $4
         ORDER BY p.member_id
         LIMIT $5) page
  JOIN members m ON m.tenant_id = $1 AND m.member_id = page.member_id
 ORDER BY m.member_id
"""

_TENANT_TIMEZONE = "SELECT timezone FROM tenants WHERE tenant_id = $1"

# Rankings: score descending, then member id; the keyset ($4, $5) is the last row of the page before.
_LEADERBOARD_INVITES = """
SELECT member_id, score FROM (
    SELECT inviter_id AS member_id, count(*)::bigint AS score
      FROM members
     WHERE tenant_id = $1 AND inviter_id IS NOT NULL AND bound_at >= $2 AND bound_at < $3
     GROUP BY inviter_id
) s
 WHERE score < $4 OR (score = $4 AND member_id > $5)
 ORDER BY score DESC, member_id
 LIMIT $6
"""

_LEADERBOARD_COMMISSION = """
SELECT member_id, score FROM (
    SELECT beneficiary_id AS member_id, sum(amount - reversed_amount)::bigint AS score
      FROM commission_items
     WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
     GROUP BY beneficiary_id
) s
 WHERE score > 0 AND (score < $4 OR (score = $4 AND member_id > $5))
 ORDER BY score DESC, member_id
 LIMIT $6
"""

_LEADERBOARD_TEAM_SALES = """
SELECT member_id, score FROM (
    SELECT p.ancestor_id AS member_id, sum(o.total_amount - o.refunded_amount)::bigint AS score
      FROM orders o
      JOIN referral_paths p ON p.tenant_id = o.tenant_id AND p.member_id = o.buyer_id
     WHERE o.tenant_id = $1 AND o.paid_at >= $2 AND o.paid_at < $3
     GROUP BY p.ancestor_id
) s
 WHERE score > 0 AND (score < $4 OR (score = $4 AND member_id > $5))
 ORDER BY score DESC, member_id
 LIMIT $6
"""

_LEVEL_COLUMNS = "code, name, rank, rates_bps, version, updated_at"

_UPSERT_LEVEL = f"""
INSERT INTO distributor_levels AS l (tenant_id, code, name, rank, rates_bps)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, code) DO UPDATE
   SET name = EXCLUDED.name, rank = EXCLUDED.rank, rates_bps = EXCLUDED.rates_bps,
       version = l.version + 1, updated_at = now()
 WHERE (l.name, l.rank, l.rates_bps) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.rank, EXCLUDED.rates_bps)
RETURNING {_LEVEL_COLUMNS}, (xmax = 0) AS created
"""

_FETCH_LEVEL = f"SELECT {_LEVEL_COLUMNS}, false AS created FROM distributor_levels WHERE tenant_id = $1 AND code = $2"

_LIST_LEVELS = f"""
SELECT {_LEVEL_COLUMNS} FROM distributor_levels
 WHERE tenant_id = $1 AND (rank, code) > ($2, $3)
 ORDER BY rank, code
 LIMIT $4
"""

_LEVEL_EXISTS = "SELECT EXISTS (SELECT 1 FROM distributor_levels WHERE tenant_id = $1 AND code = $2)"

# `since` is when the member last became active; it stays while they remain active.
_SET_DISTRIBUTOR = """
UPDATE members
   SET distributor_status = $3, distributor_level = $4,
       distributor_since = CASE WHEN $3 = 'active' AND distributor_status IS DISTINCT FROM 'active' THEN now()
                                ELSE distributor_since END,
       version = version + 1, updated_at = now()
 WHERE tenant_id = $1 AND member_id = $2
RETURNING member_id, distributor_status, distributor_level, distributor_since
"""

_ACTIVATE_DISTRIBUTOR = """
UPDATE members
   SET distributor_status = 'active',
       distributor_since = CASE WHEN distributor_status IS DISTINCT FROM 'active' THEN now() ELSE distributor_since END,
       version = version + 1, updated_at = now()
 WHERE tenant_id = $1 AND member_id = $2
RETURNING member_id, distributor_status, distributor_level, distributor_since
"""


async def insert_member(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    invite_code: str,
    registered_at: datetime,
    device_id: str | None,
    ip: str | None,
) -> asyncpg.Record | None:
    return await conn.fetchrow(_INSERT_MEMBER, tenant_id, member_id, invite_code, registered_at, device_id, ip)


async def fetch_member(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_MEMBER, tenant_id, member_id)


async def member_exists(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(_MEMBER_EXISTS, tenant_id, member_id))


async def member_by_invite_code(conn: asyncpg.Connection, tenant_id: str, invite_code: str) -> str | None:
    return await conn.fetchval(_BY_INVITE_CODE, tenant_id, invite_code)


async def lock_members(conn: asyncpg.Connection, tenant_id: str, member_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(_LOCK_MEMBERS, tenant_id, member_ids)


async def has_invitees(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(_HAS_INVITEES, tenant_id, member_id))


async def lock_tree_shared(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute(_LOCK_TREE_SHARED, tenant_id)


async def lock_tree_exclusive(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute(_LOCK_TREE_EXCLUSIVE, tenant_id)


async def is_in_ancestry(conn: asyncpg.Connection, tenant_id: str, member_id: str, candidate_id: str) -> bool:
    return bool(await conn.fetchval(_IN_ANCESTRY, tenant_id, member_id, candidate_id))


async def bindings_on_local_day(conn: asyncpg.Connection, tenant_id: str, inviter_id: str, at: datetime) -> int:
    return int(await conn.fetchval(_BINDINGS_ON_LOCAL_DAY, tenant_id, inviter_id, at))


async def set_inviter(
    conn: asyncpg.Connection,
    tenant_id: str,
    invitee_id: str,
    inviter_id: str,
    bound_at: datetime,
    flagged: bool,
    flag_reason: str | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(_SET_INVITER, tenant_id, invitee_id, inviter_id, bound_at, flagged, flag_reason)
    assert row is not None  # the caller holds the row's lock
    return row


async def insert_binding(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    invitee_id: str,
    inviter_id: str,
    previous_inviter_id: str | None,
    occurred_at: datetime,
    mode: str,
    device_id: str | None,
    ip: str | None,
    flagged: bool,
    flag_reason: str | None,
) -> None:
    await conn.execute(
        _INSERT_BINDING,
        tenant_id,
        invitee_id,
        inviter_id,
        previous_inviter_id,
        occurred_at,
        mode,
        device_id,
        ip,
        flagged,
        flag_reason,
    )


async def rewrite_paths(conn: asyncpg.Connection, tenant_id: str, invitee_id: str, inviter_id: str) -> None:
    await conn.execute(_REWRITE_PATHS, tenant_id, invitee_id, inviter_id)


async def rewrite_descendant_paths(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> None:
    await conn.execute(_REWRITE_DESCENDANT_PATHS, tenant_id, member_id)


async def ancestors(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(_ANCESTORS, tenant_id, member_id)


async def team_counts(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(_TEAM_COUNTS, tenant_id, member_id)


async def completed_withdrawals(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> int:
    return int(await conn.fetchval(_COMPLETED_WITHDRAWALS, tenant_id, member_id))


async def team_page(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, depth: int, after: str, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_TEAM_PAGE, tenant_id, member_id, depth, after, limit)


async def tenant_timezone(conn: asyncpg.Connection, tenant_id: str) -> str | None:
    return await conn.fetchval(_TENANT_TIMEZONE, tenant_id)


async def leaderboard_invites(
    conn: asyncpg.Connection, tenant_id: str, starts: datetime, ends: datetime, after: tuple[int, str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_LEADERBOARD_INVITES, tenant_id, starts, ends, after[0], after[1], limit)


async def leaderboard_commission(
    conn: asyncpg.Connection, tenant_id: str, starts: datetime, ends: datetime, after: tuple[int, str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_LEADERBOARD_COMMISSION, tenant_id, starts, ends, after[0], after[1], limit)


async def leaderboard_team_sales(
    conn: asyncpg.Connection, tenant_id: str, starts: datetime, ends: datetime, after: tuple[int, str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_LEADERBOARD_TEAM_SALES, tenant_id, starts, ends, after[0], after[1], limit)


async def upsert_level(
    conn: asyncpg.Connection, tenant_id: str, code: str, name: str, rank: int, rates_bps: list[int]
) -> asyncpg.Record | None:
    """The level when created or changed; None when the same values were already stored."""
    return await conn.fetchrow(_UPSERT_LEVEL, tenant_id, code, name, rank, rates_bps)


async def fetch_level(conn: asyncpg.Connection, tenant_id: str, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FETCH_LEVEL, tenant_id, code)


async def list_levels(
    conn: asyncpg.Connection, tenant_id: str, after: tuple[int, str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST_LEVELS, tenant_id, after[0], after[1], limit)


async def level_exists(conn: asyncpg.Connection, tenant_id: str, code: str) -> bool:
    return bool(await conn.fetchval(_LEVEL_EXISTS, tenant_id, code))


async def set_distributor(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, status: str, level_code: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(_SET_DISTRIBUTOR, tenant_id, member_id, status, level_code)


async def activate_distributor(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ACTIVATE_DISTRIBUTOR, tenant_id, member_id)
