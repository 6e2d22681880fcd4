"""The loyalty service's HTTP scenarios: earn on purchase (many members, and a hot spot on a few),
task check-in, redemption, member read.

Seeding, all over HTTP through the service itself (so the rows are exactly what the endpoints write):
- the programme with its defaults made explicit (1 point per yuan, 7 pending days: an order's points
  are pending, as most shops run it);
- `--loyalty-members` members `m-{i}` (i zero-padded to 6 digits): earn, check-in and member read
  draw one at random per request;
- `--loyalty-hot` members `hot-{i}` (3 digits): the hot-spot variant of earn, every order on one of few;
- the check-in task `bench-checkin` (kind checkin, period `day`, a limit per day no run reaches, so
  repeated check-ins of a member the same day all succeed: the benchmark counts only 2xx);
- the reward `bench-coupon` (100 points, unlimited stock, no per-member limit) and `--loyalty-redeemers`
  members `rdm-{i}` (5 digits), each credited `REDEEMER_POINTS` by an admin adjustment (one lot).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.http.core import Capture, Context, Scenario, ServicePlugin, Target, gather_limited, seed_request

__all__ = ["PLUGIN", "add_arguments"]

JOINED_AT = "2026-01-01T00:00:00+08:00"
# Orders paid and check-ins made an hour before the run: in the past, inside the tier window, and one
# tenant-local day for all the check-ins of a run.
WHEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
TASK = "bench-checkin"
REWARD = "bench-coupon"
REWARD_COST = 100
REDEEMER_POINTS = 10_000_000  # 100,000 redemptions per member: no run spends them
CHECKIN_LIMIT = 10_000  # per member per day (the service's maximum): no run reaches it


@dataclass(frozen=True)
class Population:
    """Members `{prefix}{i}` for i in 1..count, i zero-padded to `width` digits; `var` is the count's
    name as a pgbench variable, `option` its attribute on the command line's arguments."""

    prefix: str
    width: int
    var: str
    option: str

    def member(self, i: int) -> str:
        return f"{self.prefix}{i:0{self.width}d}"

    def expression(self) -> str:
        """The member of pgbench's `:i`, as SQL."""
        return f"'{self.prefix}' || lpad((:i)::text, {self.width}, '0')"

    def count(self, ctx: Context) -> int:
        return int(getattr(ctx.args, self.option))


MEMBERS = Population("m-", 6, "members", "loyalty_members")
HOT = Population("hot-", 3, "hot", "loyalty_hot")
REDEEMERS = Population("rdm-", 5, "redeemers", "loyalty_redeemers")

# The capture request's member (i = 7) and its pgbench expression: the same shape, drawn per transaction.
CAPTURE_I = 7
WARM_I = 2
UID = "'pgb' || :run || '-' || (:client_id)::text || '-' || (:n)::text"  # a new business id per transaction
DRAW_N = "\\set n random(1, 1000000000000)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loyalty")
    group.add_argument("--loyalty-members", type=int, default=10_000, help="members for earn, check-in, read")
    group.add_argument("--loyalty-hot", type=int, default=10, help="members of the hot-spot earn (default 10)")
    group.add_argument("--loyalty-redeemers", type=int, default=1_000, help="members with points to redeem")


async def seed(ctx: Context, client: httpx.AsyncClient) -> None:
    args = ctx.args
    await seed_request(
        client, ctx, "PUT", "/v1/program", {"earn_points": 1, "earn_per_amount": 100, "pending_days": 7}, "admin"
    )
    limit = args.seed_concurrency

    async def register(member_id: str) -> None:
        await seed_request(client, ctx, "PUT", f"/v1/members/{member_id}", {"joined_at": JOINED_AT, "attributes": {}})

    if ctx.selected & {"earn", "checkin", "member"}:
        await gather_limited([register(MEMBERS.member(i)) for i in range(1, args.loyalty_members + 1)], limit)
        ctx.seeded["members"] = args.loyalty_members
    if "earn_hot" in ctx.selected:
        await gather_limited([register(HOT.member(i)) for i in range(1, args.loyalty_hot + 1)], limit)
        ctx.seeded["hot"] = args.loyalty_hot
    if "checkin" in ctx.selected:
        task = {
            "name": "Daily check-in",
            "kind": "checkin",
            "points": 5,
            "period": "day",
            "limit_per_period": CHECKIN_LIMIT,
        }
        await seed_request(client, ctx, "PUT", f"/v1/tasks/{TASK}", task, "admin")
    if "redeem" in ctx.selected:
        reward = {"name": "Benchmark coupon", "cost_points": REWARD_COST, "kind": "coupon"}
        await seed_request(client, ctx, "PUT", f"/v1/rewards/{REWARD}", reward, "admin")

        async def redeemer(i: int) -> None:
            member_id = REDEEMERS.member(i)
            await register(member_id)
            grant = {"adjustment_id": f"seed-{member_id}", "points": REDEEMER_POINTS, "reason": "benchmark seed"}
            await seed_request(client, ctx, "POST", f"/v1/members/{member_id}/adjustments", grant, "admin")

        await gather_limited([redeemer(i) for i in range(1, args.loyalty_redeemers + 1)], limit)
        ctx.seeded["redeemers"] = args.loyalty_redeemers


# --------------------------------------------------------------------------------------------------
# Requests: one function per scenario builds the body for (member, unique id), used by the capture
# (real values) and by the wrk script (with `{i}` and `{uid}` placeholders), so both send the same shape.
# --------------------------------------------------------------------------------------------------


def _order(uid: str, member_id: str) -> dict[str, Any]:
    return {
        "order_id": f"o{uid}",
        "member_id": member_id,
        "currency": "CNY",  # the bench tenant's (shared.tenants default)
        "paid_at": WHEN,
        "items": [
            {"item_id": "1", "sku": "sku-1", "category": "apparel", "amount": 19900, "quantity": 1},
            {"item_id": "2", "sku": "sku-2", "category": "books", "amount": 4990, "quantity": 2},
        ],
    }


def _checkin(uid: str) -> dict[str, Any]:
    return {"completion_id": f"c{uid}", "task_code": TASK, "occurred_at": WHEN}


def _redemption(uid: str) -> dict[str, Any]:
    return {"redemption_id": f"r{uid}", "reward_code": REWARD, "quantity": 1}


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _post_args(path: str, body: dict[str, Any], population: Population) -> Any:
    """The wrk_post.lua arguments: `{i}` is the drawn member's number, `{uid}` the request's own id."""

    def args(ctx: Context, tag: str) -> dict[str, Any]:
        return {
            "key": ctx.client_key,
            "path": path,
            "body": _json(body),
            "run": tag,
            "n": population.count(ctx),
            "width": population.width,
        }

    return args


def _capture_post(
    population: Population, path: str, make: Any, member_in_body: bool = False, flows: tuple[str, ...] = ()
) -> Any:
    """Capture of a write for member i = 7 with a new id; the id and the member become pgbench
    expressions (a new id and a random member per transaction)."""

    def body(uid: str, i: int) -> dict[str, Any]:
        return make(uid, population.member(i)) if member_in_body else make(uid)

    def capture(ctx: Context, k: int) -> Capture:
        uid = f"cap{ctx.run_tag}{population.var}-{k}"
        member = population.member(CAPTURE_I)
        warm = population.member(WARM_I)
        built = body(uid, CAPTURE_I)
        # the id as the body carries it (a one-letter prefix + uid) is what the SQL sees
        business_id = next(v for v in built.values() if isinstance(v, str) and v.endswith(uid))
        return Capture(
            method="POST",
            path=path.replace("{i}", member[len(population.prefix) :]),
            json=built,
            warm=[
                (
                    "POST",
                    path.replace("{i}", warm[len(population.prefix) :]),
                    body(f"warm{ctx.run_tag}{population.var}-{k}", WARM_I),
                )
            ],
            substitutions={business_id: UID, member: population.expression()},
            preamble=f"\\set i random(1, :{population.var})\n{DRAW_N}",
            flows=flows,
        )

    return capture


def _capture_member(ctx: Context, k: int) -> Capture:
    member = MEMBERS.member(CAPTURE_I)
    return Capture(
        method="GET",
        path=f"/v1/members/{member}",
        warm=[("GET", f"/v1/members/{MEMBERS.member(WARM_I)}", None)],
        substitutions={member: MEMBERS.expression()},
        preamble=f"\\set i random(1, :{MEMBERS.var})",
    )


def _vars(ctx: Context) -> dict[str, Any]:
    return {
        "members": ctx.args.loyalty_members,
        "hot": ctx.args.loyalty_hot,
        "redeemers": ctx.args.loyalty_redeemers,
        "run": ctx.run_tag,
    }


def _earn(population: Population) -> tuple[Any, Any]:
    template = _order("{uid}", population.prefix + "{i}")
    return (
        _post_args("/v1/orders", template, population),
        _capture_post(population, "/v1/orders", _order, member_in_body=True),
    )


_EARN_ARGS, _EARN_CAPTURE = _earn(MEMBERS)
_HOT_ARGS, _HOT_CAPTURE = _earn(HOT)
_CHECKIN_PATH = "/v1/members/m-{i}/task-completions"
_REDEEM_PATH = "/v1/members/rdm-{i}/redemptions"

SCENARIOS = [
    Scenario(
        name="earn",
        label="POST /v1/orders (2 items, many members)",
        lua="wrk_post.lua",
        lua_args=_EARN_ARGS,
        capture=_EARN_CAPTURE,
        pgbench_vars=_vars,
        targets=[Target("ratio", ">=", 0.30), Target("p99_ms", "<", 100)],
        profile=True,
    ),
    Scenario(
        name="earn_hot",
        label="POST /v1/orders, hot spot (few members)",
        lua="wrk_post.lua",
        lua_args=_HOT_ARGS,
        capture=_HOT_CAPTURE,
        pgbench_vars=_vars,
        targets=[Target("rps", ">=", 0.70, relative_to="earn")],
    ),
    Scenario(
        name="checkin",
        label="POST /v1/members/{id}/task-completions (check-in)",
        lua="wrk_post.lua",
        lua_args=_post_args(_CHECKIN_PATH, _checkin("{uid}"), MEMBERS),
        # the service reads the day's first free slot, then inserts it: pgbench carries it over too
        capture=_capture_post(MEMBERS, _CHECKIN_PATH, _checkin, flows=("s",)),
        pgbench_vars=_vars,
    ),
    Scenario(
        name="redeem",
        label="POST /v1/members/{id}/redemptions (1 coupon)",
        lua="wrk_post.lua",
        lua_args=_post_args(_REDEEM_PATH, _redemption("{uid}"), REDEEMERS),
        capture=_capture_post(REDEEMERS, _REDEEM_PATH, _redemption),
        pgbench_vars=_vars,
    ),
    Scenario(
        name="member",
        label="GET /v1/members/{id}",
        lua="wrk_get.lua",
        lua_args=lambda ctx, tag: {
            "key": ctx.client_key,
            "path": "/v1/members/m-{i}",
            "n": ctx.args.loyalty_members,
            "width": MEMBERS.width,
        },
        capture=_capture_member,
        pgbench_vars=_vars,
    ),
]


def _create_app(settings: Any) -> Any:
    # imported when used: `python -m bench.http` loads every plugin for its options, and a referral-only
    # run should not depend on the loyalty service importing cleanly
    from services.loyalty.app import create_app

    return create_app(settings)


PLUGIN = ServicePlugin(
    name="loyalty",
    factory="services.loyalty.app:create_app_from_env",
    create_app=_create_app,
    seed=seed,
    seed_params=lambda args: {
        "members": args.loyalty_members,
        "hot": args.loyalty_hot,
        "redeemers": args.loyalty_redeemers,
    },
    scenarios=SCENARIOS,
)
