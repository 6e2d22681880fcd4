"""`python -m ops export entries | trial-balance | statement`: files appear whole or not at all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ops import finance
from ops.cli import main
from tests.shared.finance.conftest import ISSUED, Books
from tests.shared.finance.readers import READERS, summary_totals


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)


def _no_partials(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".partial")] == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
async def test_export_writes_the_file_atomically_in_every_format(
    books: Books, cli_env: None, tmp_path: Path, fmt: str
) -> None:
    alice = await books.member("alice")
    await books.earn(alice, 12)
    await books.earn(alice, 30)
    out = tmp_path / f"entries.{fmt}"
    args = ["export", "entries", "--service", "loyalty", "--tenant", books.tenant_id, "--format", fmt]
    assert await _main([*args, "--out", str(out)]) == 0
    rows, summary = READERS[fmt](out.read_bytes())
    assert summary.rows == len(rows) == 4 and summary_totals(summary) == {"PTS": (42, 42)}
    _no_partials(tmp_path)


async def test_a_failed_export_leaves_the_previous_file_and_no_partial(
    books: Books, cli_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await books.earn(await books.member("alice"), 5)
    out = tmp_path / "entries.csv"
    out.write_text("the previous export\n")

    async def broken(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        yield b"entry_id,leg\n"
        raise ConnectionResetError("the server went away mid-export")

    monkeypatch.setattr(finance, "export_entries", broken)
    args = ["export", "entries", "--service", "loyalty", "--tenant", books.tenant_id, "--out", str(out), "--quiet"]
    with pytest.raises(ConnectionResetError):
        await _main(args)
    assert out.read_text() == "the previous export\n"
    _no_partials(tmp_path)


async def test_trial_balance_and_statement_print_json(
    books: Books, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = await books.member("alice")
    await books.earn(alice, 8)
    assert await _main(["trial-balance", "--service", "loyalty", "--tenant", books.tenant_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {a["code"]: a["balance"] for a in report["accounts"]} == {ISSUED: 8, alice: 8}
    args = ["statement", "--service", "loyalty", "--tenant", books.tenant_id, "--account", alice, "--json"]
    assert await _main(args) == 0
    statement = json.loads(capsys.readouterr().out)
    assert (statement["opening_balance"], statement["closing_balance"], len(statement["lines"])) == (0, 8, 1)
    missing = ["statement", "--service", "loyalty", "--tenant", books.tenant_id, "--account", "member:none:points"]
    assert await _main(missing) == 2


async def _main(argv: list[str]) -> int:
    """The CLI runs its own event loop: call it from a thread, as a shell would from a process."""
    return await asyncio.to_thread(main, argv)
