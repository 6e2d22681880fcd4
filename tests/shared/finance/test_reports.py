"""Trial balance and statements as of past times: reproducible on the created clock, restated on the effective one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.shared.finance.conftest import CASH, ISSUED, Books
from tests.shared.finance.readers import READERS, summary_totals


def _accounts(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {a["code"]: (a["debits"], a["credits"], a["balance"]) for a in report["accounts"]}


async def test_a_past_as_of_gives_the_same_numbers_after_more_activity(books: Books) -> None:
    alice, bob = await books.member("alice"), await books.member("bob")
    await books.earn(alice, 100)
    await books.post([(alice, 30), (bob, -30)], kind="transfer")
    then = await books.now()
    before = (await books.get("/v1/ledger/trial-balance", as_of=then)).json()

    await books.earn(bob, 5)
    await books.earn(alice, 7, effective_at=then - timedelta(hours=1))  # back-dated into the past
    again = (await books.get("/v1/ledger/trial-balance", as_of=then)).json()
    assert again["accounts"] == before["accounts"] and again["totals"] == before["totals"]
    assert _accounts(before) == {ISSUED: (100, 0, 100), alice: (30, 100, 70), bob: (0, 30, 30)}

    # On the effective clock the back-dated entry restates the past, as finance expects.
    restated = _accounts((await books.get("/v1/ledger/trial-balance", as_of=then, basis="effective")).json())
    assert restated[alice] == (30, 107, 77)
    now = (await books.get("/v1/ledger/trial-balance")).json()
    assert _accounts(now)[ISSUED] == (112, 0, 112)
    assert all(t["balanced"] for t in now["totals"])


async def test_trial_balance_totals_prove_debits_equal_credits_per_asset(books: Books) -> None:
    wallet = await books.member("alice", "CNY")
    await books.post([(CASH, 900), (wallet, -900)], kind="deposit")
    await books.earn(await books.member("alice"), 3)
    report = (await books.get("/v1/ledger/trial-balance")).json()
    assert report["totals"] == [
        {"asset": "CNY", "debits": 900, "credits": 900, "balanced": True},
        {"asset": "PTS", "debits": 3, "credits": 3, "balanced": True},
    ]
    assert sum(a["debits"] for a in report["accounts"]) == 903


async def test_export_of_a_window_equals_the_difference_of_two_trial_balances(books: Books) -> None:
    alice = await books.member("alice")
    await books.earn(alice, 10)
    start = await books.now()
    await books.earn(alice, 20)
    await books.post([(alice, 5), (ISSUED, -5)], kind="reversal")
    end = await books.now()
    await books.earn(alice, 40)

    rows, summary = READERS["parquet"](
        (await books.get("/v1/ledger/entries", from_=start, to=end, format="parquet")).content
    )
    early = _accounts((await books.get("/v1/ledger/trial-balance", as_of=start)).json())
    late = _accounts((await books.get("/v1/ledger/trial-balance", as_of=end)).json())
    moved = {code: (late[code][0] - early[code][0], late[code][1] - early[code][1]) for code in late}
    assert summary_totals(summary) == {"PTS": (25, 25)} and len(rows) == 4
    assert moved == {ISSUED: (20, 5), alice: (5, 20)}


async def test_statement_opening_plus_lines_is_closing_across_pages(books: Books) -> None:
    alice = await books.member("alice")
    await books.earn(alice, 100)
    start = await books.now()
    for amount in (10, 20, 30):
        await books.earn(alice, amount)
    await books.post([(alice, 15), (ISSUED, -15)], kind="redeem")
    end = await books.now()
    await books.earn(alice, 1000)

    lines: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = (
            await books.get(f"/v1/ledger/accounts/{alice}/statement", from_=start, to=end, limit=2, cursor=cursor)
        ).json()
        assert (page["opening_balance"], page["closing_balance"]) == (100, 145)
        assert (page["debits"], page["credits"]) == (15, 60)
        lines += page["lines"]
        pages += 1
        if not (cursor := page["next_cursor"]):
            break
    assert pages == 2
    assert [line["credit"] - line["debit"] for line in lines] == [10, 20, 30, -15]
    assert [line["balance_after"] for line in lines] == [110, 130, 160, 145]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.integers(-50, 200).filter(bool), min_size=1, max_size=8), split=st.integers(0, 8))
async def test_statement_ties_out_for_any_activity_and_cut(books: Books, amounts: list[int], split: int) -> None:
    """Opening + Σ lines = closing, and closing(to=t) = the trial balance just before t, for any cut."""
    code = await books.member(uuid.uuid4().hex[:8])  # the fixture's tenant is shared by every example
    cut, balance = None, 0
    for i, amount in enumerate(amounts):
        if i == split:
            cut = await books.now()
        if amount > 0:
            await books.earn(code, amount)
        elif balance + amount >= 0:  # a spend the account can pay (the ledger refuses overdrafts)
            await books.post([(code, -amount), (ISSUED, amount)], kind="redeem")
        else:
            continue
        balance += amount
    cut = cut or await books.now()
    page = (await books.get(f"/v1/ledger/accounts/{code}/statement", from_=cut, limit=1000)).json()
    assert page["opening_balance"] + sum(x["credit"] - x["debit"] for x in page["lines"]) == page["closing_balance"]
    trial = _accounts((await books.get("/v1/ledger/trial-balance")).json())
    assert trial.get(code, (0, 0, 0))[2] == page["closing_balance"]  # no postings: not listed
    before_cut = _accounts((await books.get("/v1/ledger/trial-balance", as_of=cut - timedelta(microseconds=1))).json())
    assert before_cut.get(code, (0, 0, 0))[2] == page["opening_balance"]


async def test_statement_refusals(books: Books) -> None:
    alice = await books.member("alice")
    unknown = await books.get("/v1/ledger/accounts/member:nobody:points/statement")
    assert unknown.status_code == 404 and unknown.json()["type"] == "account-not-found"
    bad_cursor = await books.get(f"/v1/ledger/accounts/{alice}/statement", cursor="nonsense")
    assert bad_cursor.status_code == 400 and bad_cursor.json()["type"] == "invalid-cursor"
    now = await books.now()
    window = await books.get(f"/v1/ledger/accounts/{alice}/statement", from_=now, to=now - timedelta(days=1))
    assert window.status_code == 422 and window.json()["type"] == "invalid-window"
    far = await books.get("/v1/ledger/trial-balance", as_of="3001-01-01T00:00:00Z")
    assert far.status_code == 422 and far.json()["type"] == "invalid-timestamp"
