"""The liability roll-forward machinery (shared/ledger/liability.py) on hand-posted loyalty entries:
every category ties out, unknown kinds land in `other`, past windows are reproducible, FIFO ageing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops import cli
from ops.cli import main
from services.loyalty import accounts
from services.loyalty.reports import POINTS_LIABILITY
from services.referral.reports import COMMISSION_LIABILITY
from shared.ledger.liability import Category, LiabilitySpec, LineDef, liability_report
from tests.conftest import TenantKeys
from tests.shared.finance.conftest import Books


async def _member(books: Books, name: str | None = None) -> str:
    member = name or uuid.uuid4().hex[:8]
    async with books.pool.acquire() as conn:
        await accounts.open_member_accounts(conn, books.tenant_id, member)
    return member


def _line(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(line for line in report["lines"] if line["line"] == name)


def _categories(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in report["categories"]}


def assert_ties_out(report: dict[str, Any]) -> None:
    """opening + Σ movements = closing per category; the total the same by lines and by categories."""
    for c in report["categories"]:
        assert c["opening"] + sum(c["movements"].values()) == c["closing"], c
    assert report["opening"] == sum(c["sign"] * c["opening"] for c in report["categories"])
    assert report["closing"] == sum(c["sign"] * c["closing"] for c in report["categories"])
    assert report["opening"] + sum(line["change"] for line in report["lines"]) == report["closing"]
    for line in report["lines"]:
        # every movement is measured twice: member side and programme side (debit > 0 on the programme side)
        assert sum(line["counter_accounts"].values()) == line["change"], line
        if line["sign"]:
            assert line["amount"] == line["sign"] * line["change"]


async def test_points_roll_forward_by_line_and_category(books: Books) -> None:
    alice, bob = await _member(books), await _member(books)
    start = await books.now()
    await books.post([(accounts.ISSUED, 100), (accounts.pending(alice), -100)], kind="points.earn")
    await books.post([(accounts.pending(alice), 100), (accounts.points(alice), -100)], kind="points.release")
    await books.post([(accounts.ISSUED, 50), (accounts.points(bob), -50)], kind="points.task")
    await books.post([(accounts.points(alice), 30), (accounts.REDEEMED, -30)], kind="points.redeem")
    await books.post([(accounts.points(alice), 20), (accounts.held(alice), -20)], kind="points.hold")
    await books.post(
        [(accounts.held(alice), 20), (accounts.REDEEMED, -15), (accounts.points(alice), -5)], kind="points.hold_capture"
    )
    await books.post([(accounts.points(bob), 10), (accounts.EXPIRED, -10)], kind="points.expire")
    # a clawback beyond the balance: bob's remaining 40 and 60 of debt
    await books.post(
        [(accounts.points(bob), 40), (accounts.debt(bob), 60), (accounts.ISSUED, -100)], kind="points.reverse"
    )
    await books.post([(accounts.ISSUED, 25), (accounts.debt(bob), -25)], kind="points.adjust")
    report = (await books.get("/v1/reports/liability", from_=start)).json()

    assert report["liability"] == "points" and report["asset"] == "PTS"
    assert (report["opening"], report["closing"]) == (0, 100 + 50 - 30 - 15 - 10 - 100 + 25)
    amounts = {line["line"]: line["amount"] for line in report["lines"]}
    assert amounts == {
        "issued": 150, "redeemed": 45, "expired": 10, "reversed": 100, "adjusted": 25,
        "released": 100, "held": 20, "hold_returned": 0, "other": 0,
    }  # fmt: skip
    assert report["other"] == 0 and report["breakage_rate"] == round(10 / 150, 6)
    assert report["ageing"] is None and report["memos"] == {}
    categories = _categories(report)
    assert {k: v["closing"] for k, v in categories.items()} == {
        "points": 55, "points_pending": 0, "points_held": 0, "points_debt": 35,
    }  # fmt: skip
    assert categories["points_pending"]["movements"] == {"issued": 100, "released": -100}
    assert _line(report, "redeemed")["counter_accounts"] == {accounts.REDEEMED: -45}
    assert _line(report, "redeemed")["kinds"] == ["points.hold_capture", "points.redeem"]
    assert_ties_out(report)


async def test_an_unmapped_kind_shows_as_other_and_the_report_still_ties_out(books: Books) -> None:
    alice = await _member(books)
    await books.post([(accounts.ISSUED, 70), (accounts.points(alice), -70)], kind="points.earn")
    await books.post([(accounts.ISSUED, 9), (accounts.points(alice), -9)], kind="points.mystery")
    report = (await books.get("/v1/reports/liability")).json()
    other = _line(report, "other")
    assert report["other"] == other["change"] == 9 and other["kinds"] == ["points.mystery"]
    assert report["closing"] == 79
    assert_ties_out(report)


async def test_a_past_window_gives_the_same_report_after_more_activity(books: Books) -> None:
    alice = await _member(books)
    await books.post([(accounts.ISSUED, 40), (accounts.points(alice), -40)], kind="points.earn")
    start = await books.now()
    await books.post([(accounts.ISSUED, 60), (accounts.points(alice), -60)], kind="points.earn")
    await books.post([(accounts.points(alice), 5), (accounts.EXPIRED, -5)], kind="points.expire")
    end = await books.now()
    before = (await books.get("/v1/reports/liability", from_=start, to=end)).json()

    await books.post([(accounts.ISSUED, 1), (accounts.points(alice), -1)], kind="points.earn")
    await books.post(
        [(accounts.ISSUED, 7), (accounts.points(alice), -7)],
        kind="points.earn",
        effective_at=start + timedelta(microseconds=1),
    )  # back-dated into the window
    after = (await books.get("/v1/reports/liability", from_=start, to=end)).json()
    assert {k: v for k, v in after.items() if k != "generated_at"} == {
        k: v for k, v in before.items() if k != "generated_at"
    }
    assert (before["opening"], before["closing"], _line(before, "issued")["amount"]) == (40, 95, 60)
    # the effective clock restates the window with the back-dated entry
    restated = (await books.get("/v1/reports/liability", from_=start, to=end, basis="effective")).json()
    assert _line(restated, "issued")["amount"] == 67
    assert_ties_out(restated)


async def test_refusals(books: Books, loyalty_client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    now = await books.now()
    window = await books.get("/v1/reports/liability", from_=now, to=now - timedelta(days=1))
    assert window.status_code == 422 and window.json()["type"] == "invalid-window"
    bad = await books.get("/v1/reports/liability", basis="posted")
    assert bad.status_code == 400
    unknown = await books.get("/v1/reports/liability", as_of=now)
    assert unknown.status_code == 400  # undeclared query parameter
    client = await loyalty_client.get("/v1/reports/liability", headers=tenant.client)
    assert client.status_code == 403


async def test_the_referral_report_is_commission_in_the_tenant_currency(
    referral_client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    report = (await referral_client.get("/v1/reports/liability", headers=tenant.admin)).json()
    assert report["liability"] == "commission" and report["asset"] == "CNY"
    assert report["closing"] == 0 and report["memos"] == {"paid_out": 0, "fees": 0}
    assert [b["amount"] for b in report["ageing"]] == [0, 0, 0, 0]


_AGED = LiabilitySpec(
    name="points",
    asset=POINTS_LIABILITY.asset,
    categories=(Category("points"),),
    lines=(LineDef("in", 1, ("in",)), LineDef("out", -1, ("out",))),
    ageing_role="points",
)


async def test_ageing_is_fifo_by_effective_time(books: Books) -> None:
    alice, bob = await _member(books), await _member(books)
    now = await books.now()

    async def move(member: str, amount: int, days_ago: float) -> None:
        kind = "in" if amount > 0 else "out"
        legs = [(accounts.ISSUED, amount), (accounts.points(member), -amount)]
        await books.post(legs, kind=kind, effective_at=now - timedelta(days=days_ago))

    await move(alice, 100, 120)  # > 90
    await move(alice, 50, 40)  # 31-90
    await move(alice, 30, 10)  # 8-30
    await move(alice, -120, 5)  # FIFO: the oldest 100 and 20 of the 50
    await move(alice, 10, 1)  # 0-7
    await move(bob, 5, 0.5)
    async with books.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        report = await liability_report(conn, books.tenant_id, _AGED, from_=None, to=None)
    assert report.ageing is not None
    assert [(b.bucket, b.amount) for b in report.ageing] == [("0-7", 15), ("8-30", 30), ("31-90", 30), (">90", 0)]
    assert sum(b.amount for b in report.ageing) == report.closing == 75


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moves=st.lists(st.tuples(st.sampled_from(["in", "out", "unknown"]), st.integers(1, 50)), max_size=8),
    split=st.integers(0, 8),
)
async def test_any_activity_and_cut_ties_out(books: Books, moves: list[tuple[str, int]], split: int) -> None:
    member = await _member(books)  # the tenant is shared by every example: compare differences only
    baseline = (await books.get("/v1/reports/liability")).json()["closing"]
    cut: datetime | None = None
    balance = 0
    for i, (kind, amount) in enumerate(moves):
        if i == split:
            cut = await books.now()
        if kind == "out":
            amount = min(amount, balance)
            if not amount:
                continue
            await books.post([(accounts.points(member), amount), (accounts.REDEEMED, -amount)], kind="points.redeem")
            balance -= amount
        else:
            await books.post(
                [(accounts.ISSUED, amount), (accounts.points(member), -amount)],
                kind="points.earn" if kind == "in" else "points.unknown",
            )
            balance += amount
    report = (await books.get("/v1/reports/liability", from_=cut or await books.now())).json()
    assert_ties_out(report)
    assert report["closing"] == baseline + balance
    trial = (await books.get("/v1/ledger/trial-balance")).json()
    owed = sum(
        a["balance"] * (-1 if a["code"].endswith(":points_debt") else 1)
        for a in trial["accounts"]
        if a["code"].startswith("member:") and a["asset"] == "PTS"
    )
    assert owed == report["closing"]


def test_a_kind_maps_to_one_line_only() -> None:
    """A kind on two lines would be counted twice in the roll-forward: the spec refuses it."""
    spec = POINTS_LIABILITY
    taken = spec.lines[0].kinds[0]
    twice = (*spec.lines, LineDef(name="again", sign=1, kinds=(taken,)))
    with pytest.raises(ValueError, match=f"kind {taken} is mapped to both {spec.lines[0].name} and again"):
        LiabilitySpec(name=spec.name, asset=spec.asset, categories=spec.categories, lines=twice)
    for each in (POINTS_LIABILITY, COMMISSION_LIABILITY):  # every line's kinds are in the table, on that line
        assert {kind: line.name for line in each.lines for kind in line.kinds} == dict(each.line_of_kind)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_the_cli_prints_json_and_writes_the_file_atomically(
    books: Books, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    # Building an app here would point Litestar's log handlers at capsys's stream, closed after the test.
    monkeypatch.setattr(cli, "service_liability", {"loyalty": POINTS_LIABILITY, "referral": COMMISSION_LIABILITY}.get)
    alice = await _member(books)
    await books.post([(accounts.ISSUED, 12), (accounts.pending(alice), -12)], kind="points.earn")
    out = tmp_path / "liability.json"
    args = ["liability", "--service", "loyalty", "--tenant", books.tenant_id]
    assert await asyncio.to_thread(main, [*args, "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert printed == written and (written["closing"], written["liability"]) == (12, "points")
    assert _names(tmp_path) == ["liability.json"]  # no partial file left
    assert await asyncio.to_thread(main, args) == 0  # the rich tables
    referral = ["liability", "--service", "referral", "--tenant", books.tenant_id, "--json"]
    assert await asyncio.to_thread(main, referral) == 0
    assert json.loads(capsys.readouterr().out)["liability"] == "commission"


def test_the_cli_takes_each_service_s_spec_from_its_app() -> None:
    assert cli.service_liability("loyalty") is POINTS_LIABILITY
    assert cli.service_liability("referral") is COMMISSION_LIABILITY
