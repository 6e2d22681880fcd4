"""The referral service's HTTP scenarios: order with a two-level chain, member read, team listing.

Seeding, all over HTTP through the service itself (so the rows are exactly what the endpoints write):
- the programme: depth 2, L1 1000 bps, L2 500 bps (the defaults, set explicitly);
- `--buyers` chains `grand-{i}` <- `inviter-{i}` <- `buyer-{i}` (i zero-padded to 6 digits): each
  buyer's order pays two levels;
- `--history` orders already placed, spread over the buyers (the shop's past: see `_place_history`);
- `leader-0` with `--team-size` direct invitees `team-{j}`, then the team listing is walked page by
  page once to find the last page's cursor (and to check that every invitee is listed once).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.http.core import Capture, Context, Scenario, ServicePlugin, Target, gather_limited, seed_request
from services.referral.app import create_app

__all__ = ["PLUGIN", "add_arguments"]

PAID_AT = "2026-11-01T10:00:00+08:00"
REGISTERED_AT = datetime(2026, 1, 1, tzinfo=UTC)
LEADER = "leader-0"

# pgbench expressions for the ids the capture request used (i = 7): the same shapes, drawn per transaction.
CAPTURE_I = 7
_PAD = "lpad((:i)::text, 6, '0')"
IDS = {
    f"buyer-{CAPTURE_I:06d}": f"'buyer-' || {_PAD}",
    f"inviter-{CAPTURE_I:06d}": f"'inviter-' || {_PAD}",
    f"grand-{CAPTURE_I:06d}": f"'grand-' || {_PAD}",
}
DRAW_I = "\\set i random(1, :buyers)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("referral")
    group.add_argument("--buyers", type=int, default=1000, help="buyers, each with a two-level chain (default 1000)")
    group.add_argument(
        "--history", type=int, default=5_000, help="orders placed while seeding, over the buyers (default 5000)"
    )
    group.add_argument("--team-size", type=int, default=10_000, help="direct invitees of the team leader")
    group.add_argument("--team-page", type=int, default=50, help="team listing page size (default 50)")


def _registered(offset_s: int) -> str:
    return (REGISTERED_AT + timedelta(seconds=offset_s)).isoformat()


async def _register(
    client: httpx.AsyncClient, ctx: Context, member_id: str, at: str, invite_code: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"registered_at": at}
    if invite_code is not None:
        body["invite_code"] = invite_code
    return await seed_request(client, ctx, "PUT", f"/v1/members/{member_id}", body)


async def seed(ctx: Context, client: httpx.AsyncClient) -> None:
    args = ctx.args
    await seed_request(client, ctx, "PUT", "/v1/program", {"depth": 2, "level_rates_bps": [1000, 500]}, "admin")

    if not ctx.selected & {"order", "member", "team_first", "team_last"}:
        return

    async def chain(i: int) -> None:
        grand = await _register(client, ctx, f"grand-{i:06d}", _registered(i))
        inviter = await _register(client, ctx, f"inviter-{i:06d}", _registered(i), grand["invite_code"])
        await _register(client, ctx, f"buyer-{i:06d}", _registered(i), inviter["invite_code"])

    if ctx.selected & {"order", "member"}:
        await gather_limited([chain(i) for i in range(1, args.buyers + 1)], args.seed_concurrency)
        ctx.seeded.update({"buyers": args.buyers, "chain_members": 3 * args.buyers})
        await _place_history(client, ctx)
    if not ctx.selected & {"team_first", "team_last"}:
        return

    # The team: each registration binds through the leader's invite code. They queue on the leader's
    # row (the binding locks invitee and inviter until commit), so this part does not go faster with
    # more concurrency: on a loaded machine it is most of the seeding time.
    leader = await _register(client, ctx, LEADER, _registered(0))
    await gather_limited(
        [
            _register(client, ctx, f"team-{j:05d}", _registered(j), leader["invite_code"])
            for j in range(1, args.team_size + 1)
        ],
        args.seed_concurrency,
    )

    # Walk the team once: the last page's cursor, and a check that every invitee shows up once.
    first = f"/v1/members/{LEADER}/team?level=1&limit={args.team_page}"
    seen: set[str] = set()
    cursor: str | None = None
    last_cursor: str | None = None
    pages = 0
    while True:
        path = first if cursor is None else f"{first}&cursor={cursor}"
        try:
            response = await client.get(path, headers=ctx.headers())
        except httpx.TransportError:
            response = await client.get(path, headers=ctx.headers())  # a closed keep-alive connection: once more
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:500]}")
        page = response.json()
        pages += 1
        seen.update(_member_id(item) for item in page["items"])
        if not page.get("next_cursor"):
            break
        last_cursor = cursor = page["next_cursor"]
    if len(seen) != args.team_size:
        raise RuntimeError(f"team listing of {LEADER} shows {len(seen)} invitees, {args.team_size} registered")
    ctx.seeded.update(
        {
            "team_size": args.team_size,
            "team_pages": pages,
            "team_first_path": first,
            "team_last_path": first if last_cursor is None else f"{first}&cursor={last_cursor}",
        }
    )


async def _place_history(client: httpx.AsyncClient, ctx: Context) -> None:
    """Orders placed before the measurement, so the ledger and order tables are not empty.

    On empty tables the service's pooled connections plan the lookups in `entries` made while posting
    and the commission rows' foreign-key check as sequential scans, and keep those plans: each order
    then reads the whole table, until the statistics are updated (docs/benchmarks.md, "Issue 4, fourth
    round"). pgbench, whose connections open after the HTTP run, got index plans. A shop that has sold
    anything is not in that state either.
    """
    args = ctx.args

    async def place(k: int) -> None:
        await seed_request(client, ctx, "POST", "/v1/orders", _order(f"seed-{k:06d}", k % args.buyers + 1))

    await gather_limited([place(k) for k in range(args.history)], args.seed_concurrency)
    ctx.seeded["history_orders"] = args.history


def _member_id(item: dict[str, Any]) -> str:
    return str(item.get("member_id") or item.get("id"))


def _order(order_id: str, i: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "buyer_id": f"buyer-{i:06d}",
        "currency": "CNY",
        "paid_at": PAID_AT,
        # the same items as bench/referral_order.lua
        "items": [
            {"item_id": "sku-1", "category": "apparel", "amount": 19900, "quantity": 1},
            {"item_id": "sku-2", "category": "books", "amount": 4990, "quantity": 2},
        ],
    }


def _capture_order(ctx: Context, k: int) -> Capture:
    order_id = f"capture-{ctx.run_tag}-order{k}"
    return Capture(
        method="POST",
        path="/v1/orders",
        json=_order(order_id, CAPTURE_I),
        warm=[("POST", "/v1/orders", _order(f"capture-{ctx.run_tag}-warm{k}", 2))],
        substitutions={order_id: "'pgb' || :run || '-' || (:client_id)::text || '-' || (:n)::text", **IDS},
        preamble=DRAW_I + "\n\\set n random(1, 1000000000000)",
    )


def _capture_member(ctx: Context, k: int) -> Capture:
    return Capture(
        method="GET",
        path=f"/v1/members/inviter-{CAPTURE_I:06d}",
        warm=[("GET", "/v1/members/inviter-000002", None)],
        substitutions=IDS,
        preamble=DRAW_I,
    )


def _capture_team(which: str) -> Any:
    def capture(ctx: Context, k: int) -> Capture:
        path = ctx.seeded[f"team_{which}_path"]
        return Capture(method="GET", path=path, warm=[("GET", path, None)])

    return capture


def _capture_program(ctx: Context, k: int) -> Capture:
    return Capture(method="GET", path="/v1/program", scope="admin", warm=[("GET", "/v1/program", None)])


def _team_args(which: str) -> Any:
    return lambda ctx, tag: {"key": ctx.client_key, "path": ctx.seeded[f"team_{which}_path"]}


SCENARIOS = [
    Scenario(
        name="order",
        label="POST /v1/orders (2 items, 2-level chain)",
        lua="referral_order.lua",
        lua_args=lambda ctx, tag: {"key": ctx.client_key, "run": tag, "n": ctx.args.buyers, "paid_at": PAID_AT},
        capture=_capture_order,
        pgbench_vars=lambda ctx: {"buyers": ctx.args.buyers, "run": ctx.run_tag},
        targets=[Target("ratio", ">=", 0.25), Target("p99_ms", "<", 100)],
        profile=True,
    ),
    Scenario(
        name="member",
        label="GET /v1/members/{id}",
        lua="wrk_get.lua",
        lua_args=lambda ctx, tag: {
            "key": ctx.client_key,
            "path": "/v1/members/inviter-{i}",
            "n": ctx.args.buyers,
            "width": 6,
        },
        capture=_capture_member,
        pgbench_vars=lambda ctx: {"buyers": ctx.args.buyers},
        profile=True,
    ),
    Scenario(
        name="team_first",
        label="GET /v1/members/{id}/team, first page",
        lua="wrk_get.lua",
        lua_args=_team_args("first"),
        capture=_capture_team("first"),
        targets=[Target("p99_ms", "<", 20)],
    ),
    Scenario(
        name="team_last",
        label="GET /v1/members/{id}/team, last page",
        lua="wrk_get.lua",
        lua_args=_team_args("last"),
        capture=_capture_team("last"),
        targets=[Target("p99_ms", "<", 20)],
        profile=True,
    ),
    Scenario(
        name="program",
        label="GET /v1/program (framework baseline)",
        lua="wrk_get.lua",
        lua_args=lambda ctx, tag: {"key": ctx.admin_key, "path": "/v1/program"},
        capture=_capture_program,
        default=False,
    ),
]

PLUGIN = ServicePlugin(
    name="referral",
    factory="services.referral.app:create_app_from_env",
    create_app=create_app,
    seed=seed,
    seed_params=lambda args: {
        "buyers": args.buyers,
        "history": args.history,
        "team_size": args.team_size,
        "team_page": args.team_page,
    },
    scenarios=SCENARIOS,
)
