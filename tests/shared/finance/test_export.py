"""The journal export: every format reads back to its own summary and to the trial balance."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.shared.finance.conftest import CASH, ISSUED, Books
from tests.shared.finance.readers import READERS, summary_totals, totals

FORMATS = ["csv", "jsonl", "parquet"]


async def _activity(books: Books) -> None:
    alice, bob = await books.member("alice"), await books.member("bob")
    wallet = await books.member("alice", "CNY")
    await books.earn(alice, 100, reason='a "quoted", comma\nand a newline', source_ref="order:1")
    await books.earn(bob, 40, source_ref="order:2")
    await books.post([(alice, 30), (bob, -30)], kind="transfer")
    await books.post([(CASH, 250), (wallet, -250)], kind="deposit", reason="fen")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_each_format_reads_back_to_its_summary_and_the_trial_balance(books: Books, fmt: str) -> None:
    await _activity(books)
    response = await books.get("/v1/ledger/entries", format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}[fmt]
    )
    rows, summary = READERS[fmt](response.content)

    assert summary.rows == len(rows) == 8
    assert summary.tenant_id == books.tenant_id and summary.basis == "created"
    assert totals(rows) == summary_totals(summary) == {"CNY": (250, 250), "PTS": (170, 170)}
    assert [(r["entry_id"], r["leg"]) for r in rows] == sorted((r["entry_id"], r["leg"]) for r in rows)
    assert rows[0]["reason"] == 'a "quoted", comma\nand a newline' and rows[0]["source_ref"] == "order:1"
    assert rows[0]["account"] == ISSUED and rows[0]["debit"] == 100 and rows[0]["credit"] == 0
    assert rows[1]["owner_id"] == "alice" and rows[1]["credit"] == 100

    trial = (await books.get("/v1/ledger/trial-balance")).json()
    assert {t["asset"]: (t["debits"], t["credits"]) for t in trial["totals"]} == summary_totals(summary)
    assert all(t["balanced"] for t in trial["totals"])


async def test_times_are_utc_and_both_clocks_are_exported(books: Books) -> None:
    alice = await books.member("alice")
    back = (await books.now()) - timedelta(days=3)
    await books.earn(alice, 5, effective_at=back)
    rows, _ = READERS["jsonl"]((await books.get("/v1/ledger/entries", format="jsonl")).content)
    assert rows[0]["effective_at"].endswith("Z") and rows[0]["created_at"].endswith("Z")
    assert rows[0]["effective_at"] < rows[0]["created_at"]
    csv_rows, _ = READERS["csv"]((await books.get("/v1/ledger/entries")).content)
    assert (csv_rows[0]["effective_at"], csv_rows[0]["created_at"]) == (rows[0]["effective_at"], rows[0]["created_at"])
    parquet_rows, _ = READERS["parquet"]((await books.get("/v1/ledger/entries", format="parquet")).content)
    # Text drops the fraction's trailing zeros (PostgreSQL's output), so compare instants, not strings.
    assert parquet_rows[0]["effective_at"] == datetime.fromisoformat(rows[0]["effective_at"])


async def test_windows_are_half_open_and_chosen_by_basis(books: Books) -> None:
    alice = await books.member("alice")
    await books.earn(alice, 1)
    cut = await books.now()
    await books.earn(alice, 2)
    await books.earn(alice, 4, effective_at=cut - timedelta(days=1))  # back-dated: written after `cut`

    async def amounts(**params: object) -> list[int]:
        rows, summary = READERS["csv"]((await books.get("/v1/ledger/entries", **params)).content)
        assert summary.rows == len(rows)
        return [r["credit"] for r in rows if r["credit"]]

    assert await amounts(to=cut) == [1]
    assert await amounts(from_=cut) == [2, 4]
    assert await amounts(to=cut, basis="effective") == [1, 4]
    assert await amounts(from_=cut, to=cut) == []
    # Windows that tile the timeline export every posting exactly once.
    assert sorted(await amounts(to=cut) + await amounts(from_=cut)) == sorted(await amounts())


async def test_an_empty_export_still_carries_its_summary(books: Books) -> None:
    for fmt in FORMATS:
        rows, summary = READERS[fmt]((await books.get("/v1/ledger/entries", format=fmt)).content)
        assert rows == [] and summary.rows == 0 and summary.totals == []


async def test_exports_are_per_tenant_and_admin_only(books: Books) -> None:
    await books.earn(await books.member("alice"), 7)
    client_key = await books.client.get("/v1/ledger/entries", headers=books.tenant.client)
    assert client_key.status_code == 403
    assert (await books.client.get("/v1/ledger/entries")).status_code == 401


async def test_a_window_that_ends_before_it_starts_is_refused(books: Books) -> None:
    now = await books.now()
    response = await books.get("/v1/ledger/entries", from_=now, to=now - timedelta(seconds=1))
    assert response.status_code == 422 and response.json()["type"] == "invalid-window"
    response = await books.get("/v1/ledger/entries", format="xml")
    assert response.status_code == 400


async def test_an_unknown_query_parameter_is_refused_not_ignored(books: Books) -> None:
    response = await books.get("/v1/ledger/entries", form="2025-01-01T00:00:00Z")  # `from`, misspelt
    assert response.status_code == 400 and "form" in response.json()["detail"]
    assert (await books.get("/v1/ledger/trial-balance", basis="effective")).status_code == 200
