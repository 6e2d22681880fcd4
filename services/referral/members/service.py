"""Members, invite codes and binding rules (§6.2), the member view and the team listing (§6.6).

Binding guarantees, each tested:
- A member has at most one inviter; every binding is a row in `bindings`; the member row holds the current one.
- The invite tree never has a cycle, at any depth, also under concurrent bindings.
- `referral_paths` holds, for every bound member, exactly its ancestors at depth 1..3, also after a
  rebinding of a member with a team (the team's rows above that member move with it).

Concurrency: a binding locks the invitee and the inviter rows (one statement, key order), so bindings of
one invitee, and bindings to one inviter (the daily cap), serialise. It then takes the tenant's tree
lock: shared when the invitee has no invitees (the common case: a new member; no cycle can pass through
a member nobody was invited by, and nobody can invite through it while we hold its row), exclusive when
it has a team (its descendants' paths are rewritten, and the cycle walk must see every committed edge).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.referral import accounts
from services.referral.members import repository
from services.referral.members.schemas import (
    Ancestor,
    Balances,
    Binding,
    BindingIn,
    DistributorInfo,
    Member,
    MemberIn,
    TeamCounts,
    TeamMember,
)
from services.referral.program.schemas import ProgramConfig
from services.referral.program.service import is_eligible, load_program
from shared.errors import DomainError
from shared.events.outbox import emit
from shared.ledger import balances
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.timestamps import checked_time

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "bind",
    "create_binding",
    "ensure_member",
    "get_member",
    "list_team",
    "member_not_found",
    "new_invite_code",
    "register_member",
]

# No 0/O, 1/I: codes are read aloud and typed from posters. 32^8 ≈ 10^12 codes per tenant.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 8
_CODE_ATTEMPTS = 8


def new_invite_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def member_not_found(member_id: str) -> DomainError:
    return DomainError("member-not-found", 404, f"member {member_id} does not exist")


async def _insert_with_fresh_code(
    conn: asyncpg.Connection,
    tenant_id: str,
    member_id: str,
    registered_at: datetime,
    device_id: str | None,
    ip: str | None,
) -> asyncpg.Record | None:
    """The new member's row, or None if the member already exists. A colliding code is drawn again."""
    for _ in range(_CODE_ATTEMPTS):
        row = await repository.insert_member(
            conn, tenant_id, member_id, new_invite_code(), registered_at, device_id, ip
        )
        if row is not None:
            return row
        if await repository.member_exists(conn, tenant_id, member_id):
            return None
    raise DomainError("invite-codes-exhausted", 503, "no free invite code was found; retry")


async def _open(conn: asyncpg.Connection, tenant_id: str, row: asyncpg.Record) -> None:
    """What every new member gets: its commission accounts and a `member.registered` event."""
    currency = await accounts.tenant_currency(conn, tenant_id)
    await accounts.open_member_accounts(conn, tenant_id, row["member_id"], currency)
    await emit(
        conn,
        tenant_id,
        "member.registered",
        {"member_id": row["member_id"], "invite_code": row["invite_code"], "registered_at": row["registered_at"]},
        occurred_at=row["registered_at"],
    )


async def ensure_member(conn: asyncpg.Connection, tenant_id: str, member_id: str, registered_at: datetime) -> bool:
    """Register the member if unknown (no binding); True when it was created."""
    row = await _insert_with_fresh_code(conn, tenant_id, member_id, registered_at, None, None)
    if row is None:
        return False
    await _open(conn, tenant_id, row)
    return True


async def register_member(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, data: MemberIn
) -> tuple[bool, Member]:
    """PUT /v1/members/{id}: (created, member). For an existing member it changes nothing and returns
    the member as stored: the original `registered_at` is kept (a member may have been registered first
    by a loyalty `plan.activated` event), and the code, device and ip are ignored (bind with POST
    /v1/bindings). With a code, a refused binding refuses the registration (the transaction rolls back)."""
    registered_at = checked_time(data.registered_at, "registered_at")
    row = await _insert_with_fresh_code(conn, tenant_id, member_id, registered_at, data.device_id, data.ip)
    if row is None:
        return False, await get_member(conn, tenant_id, member_id)
    await _open(conn, tenant_id, row)
    if data.invite_code is not None:
        config = (await load_program(conn, tenant_id)).config
        await bind(
            conn,
            tenant_id,
            config,
            invitee_id=member_id,
            invite_code=data.invite_code,
            inviter_id=None,
            occurred_at=registered_at,
            device_id=data.device_id,
            ip=data.ip,
        )
    return True, await get_member(conn, tenant_id, member_id)


async def create_binding(conn: asyncpg.Connection, tenant_id: str, data: BindingIn) -> tuple[bool, Binding]:
    """POST /v1/bindings: (changed, binding)."""
    config = (await load_program(conn, tenant_id)).config
    return await bind(
        conn,
        tenant_id,
        config,
        invitee_id=data.invitee_id,
        invite_code=data.invite_code,
        inviter_id=data.inviter_id,
        occurred_at=data.occurred_at,
        device_id=data.device_id,
        ip=data.ip,
    )


def _current(row: asyncpg.Record) -> Binding:
    return Binding(
        invitee_id=row["member_id"],
        inviter_id=row["inviter_id"],
        previous_inviter_id=None,
        bound_at=row["bound_at"],
        flagged=row["binding_flagged"],
        flag_reason=row["flag_reason"],
    )


def _flag_reason(invitee: asyncpg.Record, inviter: asyncpg.Record, device_id: str | None, ip: str | None) -> str | None:
    """Shared device or ip with the inviter (the binding's own, else the invitee's registered ones)."""
    device = device_id or invitee["device_id"]
    address = ip or invitee["ip"]
    reasons = []
    if device is not None and device == inviter["device_id"]:
        reasons.append("same-device")
    if address is not None and address == inviter["ip"]:
        reasons.append("same-ip")
    return ",".join(reasons) or None


async def _resolve_inviter(
    conn: asyncpg.Connection, tenant_id: str, invite_code: str | None, inviter_id: str | None
) -> str:
    if (invite_code is None) == (inviter_id is None):
        raise DomainError("invalid-inviter", 422, "give exactly one of invite_code and inviter_id")
    if inviter_id is not None:
        return inviter_id
    assert invite_code is not None
    found = await repository.member_by_invite_code(conn, tenant_id, invite_code.upper())
    if found is None:
        raise DomainError("unknown-invite-code", 422, f"no member has the invite code {invite_code}")
    return found


def _check_policy(config: ProgramConfig, invitee: asyncpg.Record, occurred_at: datetime) -> None:
    """The programme's binding mode and lifetime (§6.2)."""
    policy = config.binding
    if invitee["inviter_id"] is not None:
        lapsed = policy.lifetime_days is not None and occurred_at - invitee["bound_at"] >= timedelta(
            days=policy.lifetime_days
        )
        if policy.mode != "override" and not lapsed:
            raise DomainError(
                "already-bound",
                409,
                f"member {invitee['member_id']} is bound to {invitee['inviter_id']}; the first binding stands",
            )
    elif policy.mode == "register_window" and occurred_at - invitee["registered_at"] > timedelta(
        seconds=policy.register_window_seconds
    ):
        raise DomainError(
            "binding-window-closed",
            422,
            f"bindings are accepted within {policy.register_window_seconds} s of registration only",
        )


async def bind(
    conn: asyncpg.Connection,
    tenant_id: str,
    config: ProgramConfig,
    *,
    invitee_id: str,
    invite_code: str | None,
    inviter_id: str | None,
    occurred_at: datetime,
    device_id: str | None,
    ip: str | None,
) -> tuple[bool, Binding]:
    """Bind the invitee to the inviter under the programme's rules: (changed, binding)."""
    occurred_at = checked_time(occurred_at, "occurred_at")
    inviter_id = await _resolve_inviter(conn, tenant_id, invite_code, inviter_id)
    if inviter_id == invitee_id:
        raise DomainError("self-referral", 422, "a member cannot invite themselves")
    rows = {row["member_id"]: row for row in await repository.lock_members(conn, tenant_id, [invitee_id, inviter_id])}
    invitee, inviter = rows.get(invitee_id), rows.get(inviter_id)
    if invitee is None:
        raise member_not_found(invitee_id)
    if inviter is None:
        raise member_not_found(inviter_id)
    if invitee["inviter_id"] == inviter_id:
        return False, _current(invitee)
    _check_policy(config, invitee, occurred_at)
    if not is_eligible(config, inviter["distributor_status"]):
        raise DomainError("inviter-not-eligible", 422, f"member {inviter_id} is not an eligible distributor")

    has_team = await repository.has_invitees(conn, tenant_id, invitee_id)
    if has_team:
        await repository.lock_tree_exclusive(conn, tenant_id)
        # Only a member with invitees can be someone's ancestor, so only then can a cycle close.
        if await repository.is_in_ancestry(conn, tenant_id, inviter_id, invitee_id):
            raise DomainError(
                "referral-cycle", 422, f"member {invitee_id} is an ancestor of {inviter_id}: the tree would loop"
            )
    else:
        await repository.lock_tree_shared(conn, tenant_id)

    cap = config.binding.daily_cap_per_inviter
    if cap is not None and await repository.bindings_on_local_day(conn, tenant_id, inviter_id, occurred_at) >= cap:
        raise DomainError(
            "binding-cap-reached", 422, f"member {inviter_id} has reached {cap} bindings on that day (tenant time)"
        )

    reason = _flag_reason(invitee, inviter, device_id, ip)
    previous = invitee["inviter_id"]
    row = await repository.set_inviter(conn, tenant_id, invitee_id, inviter_id, occurred_at, reason is not None, reason)
    await repository.insert_binding(
        conn,
        tenant_id,
        invitee_id=invitee_id,
        inviter_id=inviter_id,
        previous_inviter_id=previous,
        occurred_at=occurred_at,
        mode=config.binding.mode,
        device_id=device_id,
        ip=ip,
        flagged=reason is not None,
        flag_reason=reason,
    )
    await repository.rewrite_paths(conn, tenant_id, invitee_id, inviter_id)
    if has_team:
        await repository.rewrite_descendant_paths(conn, tenant_id, invitee_id)
    bound: dict[str, Any] = {
        "invitee_id": invitee_id,
        "inviter_id": inviter_id,
        "previous_inviter_id": previous,
        "occurred_at": occurred_at,
        "flagged": reason is not None,
    }
    await emit(conn, tenant_id, "referral.bound", bound, occurred_at=occurred_at)
    if reason is not None:
        flagged = {"invitee_id": invitee_id, "inviter_id": inviter_id, "reason": reason}
        await emit(conn, tenant_id, "referral.flagged", flagged, occurred_at=occurred_at)
    return True, Binding(
        invitee_id=invitee_id,
        inviter_id=inviter_id,
        previous_inviter_id=previous,
        bound_at=row["bound_at"],
        flagged=reason is not None,
        flag_reason=reason,
    )


async def get_member(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> Member:
    row = await repository.fetch_member(conn, tenant_id, member_id)
    if row is None:
        raise member_not_found(member_id)
    config = (await load_program(conn, tenant_id)).config
    ancestors = [
        Ancestor(level=a["depth"], member_id=a["ancestor_id"])
        for a in await repository.ancestors(conn, tenant_id, member_id)
    ]
    team = {t["depth"]: t["members"] for t in await repository.team_counts(conn, tenant_id, member_id)}
    codes = [
        accounts.frozen(member_id),
        accounts.available(member_id),
        accounts.withdrawing(member_id),
        accounts.debt(member_id),
    ]
    found = await balances(conn, tenant_id, codes)
    currency = next(iter(found.values())).asset if found else await accounts.tenant_currency(conn, tenant_id)
    amounts = [found[code].balance if code in found else 0 for code in codes]
    withdrawn = await repository.completed_withdrawals(conn, tenant_id, member_id)
    return Member(
        member_id=row["member_id"],
        invite_code=row["invite_code"],
        registered_at=row["registered_at"],
        inviter_id=row["inviter_id"],
        bound_at=row["bound_at"],
        flagged=row["binding_flagged"],
        flag_reason=row["flag_reason"],
        ancestors=ancestors,
        distributor=DistributorInfo(
            status=row["distributor_status"],
            level_code=row["distributor_level"],
            since=row["distributor_since"],
            eligible=is_eligible(config, row["distributor_status"]),
        ),
        balances=Balances(
            currency=currency,
            frozen=amounts[0],
            available=amounts[1],
            withdrawing=amounts[2],
            withdrawn=withdrawn,
            debt=amounts[3],
        ),
        team=TeamCounts(level_1=team.get(1, 0), level_2=team.get(2, 0), level_3=team.get(3, 0)),
        order_count=row["order_count"],
        paid_amount=row["paid_amount"],
    )


async def list_team(
    conn: asyncpg.Connection, tenant_id: str, member_id: str, level: int, limit: int, cursor: str | None
) -> Page[TeamMember]:
    """The member's invitees at one level, by member id (keyset: the last id of the page before)."""
    after = decode_cursor(cursor, (str,))[0] if cursor else ""
    if "\x00" in after:
        raise DomainError("invalid-cursor", 400, "the cursor is not one this service issued")
    rows = await repository.team_page(conn, tenant_id, member_id, level, after, limit + 1)
    if not rows and not await repository.member_exists(conn, tenant_id, member_id):  # one query per page
        raise member_not_found(member_id)
    items = [
        TeamMember(
            member_id=r["member_id"],
            level=level,
            joined_at=r["joined_at"],
            order_count=r["order_count"],
            paid_amount=r["paid_amount"],
        )
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor([items[-1].member_id]) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)
