"""Finance commands of `python -m ops` (§7): export entries, trial balance, statement, liability.

Files are written atomically: into a temporary name in the target's folder, flushed to disk, then
renamed over the target, so a reader never sees half an export and a failed run leaves the old file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from shared.errors import DomainError
from shared.ledger.export import ExportSummary, ExportWindow, Format, export_entries, parse_csv_trailer
from shared.ledger.liability import LiabilityReport, LiabilitySpec, liability_report
from shared.ledger.reports import statement, trial_balance

__all__ = ["add_parsers", "run_finance_command", "write_atomically"]

console = Console(stderr=True)
Connect = Callable[[str, str], Any]


async def write_atomically(out: Path, chunks: AsyncIterator[bytes]) -> None:
    """Write `chunks` to `out` (an absolute path) via a temporary file in the same folder and one rename."""
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with temporary.open("wb") as file:
            async for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


async def export_to_file(
    conn: asyncpg.Connection, window: ExportWindow, fmt: Format, out: Path, show_progress: bool = True
) -> ExportSummary:
    seen: dict[str, ExportSummary] = {}
    columns = (
        TextColumn("export"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        task = progress.add_task("postings", total=None)

        def on_rows(n: int, summary: ExportSummary) -> None:
            if not seen:
                seen["summary"] = summary
                progress.update(task, total=summary.rows)
            progress.advance(task, n)

        await write_atomically(out, export_entries(conn, window, fmt, on_rows))
        if "summary" in seen:  # CSV's count of lines is approximate: end on the exact figure
            progress.update(task, completed=seen["summary"].rows)
    if "summary" not in seen:  # an export with no rows reports nothing on the way: read it from the file
        return _summary_of(out, fmt)
    return seen["summary"]


def _summary_of(out: Path, fmt: Format) -> ExportSummary:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        raw = pq.read_schema(out).metadata[b"ledger_export"]
        return msgspec.json.decode(raw, type=ExportSummary)
    last = out.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if fmt == "csv":
        return parse_csv_trailer(last)
    return msgspec.json.decode(last, type=dict[str, ExportSummary])["trailer"]


def _print_summary(summary: ExportSummary, out: Path) -> None:
    table = Table(title=f"{out}: {summary.rows} postings")
    for column in ("asset", "debits", "credits"):
        table.add_column(column)
    for t in summary.totals:
        table.add_row(t.asset, str(t.debits), str(t.credits))
    console.print(table)


async def _report(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if args.command == "liability":
            spec: LiabilitySpec = args.spec
            # one statement over the journal up to `to`: a spinner, since there is no count to show
            with console.status(f"summing the {spec.name} liability from postings", spinner="dots"):
                return await liability_report(conn, args.tenant, spec, from_=args.from_, to=args.to, basis=args.basis)
        if args.command == "trial-balance":
            return await trial_balance(conn, args.tenant, args.as_of, args.basis)
        lines, page = [], None
        after = None
        while page is None or page.next_cursor:
            page = await statement(
                conn, args.tenant, args.account, from_=args.from_, to=args.to, basis=args.basis, limit=1000, after=after
            )
            lines.extend(page.lines)
            after = (page.lines[-1].entry_id, page.lines[-1].leg) if page.lines else None
        return msgspec.structs.replace(page, lines=lines, next_cursor=None)


def _print_liability(report: LiabilityReport) -> None:
    window = f"{report.from_.isoformat() if report.from_ else '-'} .. {report.to.isoformat() if report.to else '-'}"
    table = Table(title=f"{report.liability} liability ({report.asset}, {report.basis}) {window}")
    for column in ("line", "sign", "amount", "kinds"):
        table.add_column(column)
    table.add_row("[bold]opening[/bold]", "", str(report.opening), "")
    for line in report.lines:
        sign = {1: "+", -1: "-", 0: "transfer"}[line.sign]
        table.add_row(line.line, sign, str(line.amount), ", ".join(line.kinds))
    table.add_row("[bold]closing[/bold]", "", str(report.closing), "")
    console.print(table)
    categories = Table(title="by category (normal-side balances)")
    for column in ("category", "sign", "opening", "movements", "closing"):
        categories.add_column(column)
    for c in report.categories:
        categories.add_row(c.category, str(c.sign), str(c.opening), str(sum(c.movements.values())), str(c.closing))
    console.print(categories)
    notes = [f"{name}: {value}" for name, value in report.memos.items()]
    if report.breakage_rate is not None:
        notes.append(f"breakage rate: {report.breakage_rate:.4%}")
    if report.ageing is not None:
        notes += [f"available aged {b.bucket} days: {b.amount}" for b in report.ageing]
    if report.other:
        notes.append(f"[red]other (unmapped kinds): {report.other}[/red]")
    for note in notes:
        console.print(note)


def _print_report(report: Any, command: str) -> None:
    if command == "liability":
        _print_liability(report)
        return
    if command == "trial-balance":
        table = Table(title=f"trial balance as of {report.as_of.isoformat()} ({report.basis})")
        for column in ("account", "asset", "debits", "credits", "balance"):
            table.add_column(column)
        for a in report.accounts:
            table.add_row(a.code, a.asset, str(a.debits), str(a.credits), str(a.balance))
        for t in report.totals:
            table.add_row(f"[bold]total {t.asset}[/bold]", t.asset, str(t.debits), str(t.credits), "")
    else:
        table = Table(title=f"{report.code} ({report.asset}): opening {report.opening_balance}")
        for column in ("entry", "leg", "kind", "created_at", "debit", "credit", "balance"):
            table.add_column(column)
        for line in report.lines:
            table.add_row(
                str(line.entry_id),
                str(line.leg),
                line.kind,
                line.created_at.isoformat(),
                str(line.debit),
                str(line.credit),
                str(line.balance_after),
            )
        table.caption = f"closing {report.closing_balance}"
    console.print(table)


async def _run(connect: Connect, url: str, args: argparse.Namespace) -> int:
    conn: asyncpg.Connection = await connect(url, args.service)
    try:
        if args.command == "export":
            window = ExportWindow(tenant_id=args.tenant, from_=args.from_, to=args.to, basis=args.basis)
            out = Path(os.path.abspath(args.out))  # noqa: ASYNC240 (no I/O: a string operation)
            summary = await export_to_file(conn, window, args.format, out, show_progress=not args.quiet)
            _print_summary(summary, out)
            return 0
        report = await _report(conn, args)
    finally:
        await conn.close()
    if getattr(args, "out", None):
        out = Path(os.path.abspath(args.out))  # noqa: ASYNC240 (no I/O: a string operation)
        await write_atomically(out, _one_chunk(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"))
        console.print(f"wrote {out}")
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        _print_report(report, args.command)
    return 0


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def run_finance_command(connect: Connect, url: str, args: argparse.Namespace) -> int:
    if args.from_ and args.to and args.from_ > args.to:
        console.print("[red]--from must not be after --to[/red]")
        return 2
    try:
        return asyncio.run(_run(connect, url, args))
    except DomainError as refusal:
        console.print(f"[red]{refusal.type}: {refusal.detail}[/red]")
        return 2


def add_parsers(sub: Any, services: Sequence[str], rfc3339: Callable[[str], datetime]) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--service", choices=list(services), required=True)
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--basis", choices=["created", "effective"], default="created", help="which clock selects entries"
        )

    def window(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--from", dest="from_", type=rfc3339, default=None, help="inclusive, RFC 3339")
        parser.add_argument("--to", type=rfc3339, default=None, help="exclusive, RFC 3339")

    p_export = sub.add_parser("export", help="export the journal to a file (atomically, with a progress bar)")
    export_sub = p_export.add_subparsers(dest="export_command", required=True)
    p_entries = export_sub.add_parser("entries", help="one row per posting: csv, jsonl or parquet")
    common(p_entries)
    window(p_entries)
    p_entries.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv")
    p_entries.add_argument("--out", required=True, help="target file (replaced only when the export completed)")
    p_entries.add_argument("--quiet", action="store_true", help="no progress bar")

    p_tb = sub.add_parser("trial-balance", help="every account's totals as of a time, per-asset proof")
    common(p_tb)
    p_tb.add_argument("--as-of", type=rfc3339, default=None, help="inclusive, RFC 3339 (default now)")
    p_tb.add_argument("--json", action="store_true", help="print JSON on stdout")
    p_tb.set_defaults(from_=None, to=None)

    p_st = sub.add_parser("statement", help="an account's opening balance, lines and closing balance")
    common(p_st)
    window(p_st)
    p_st.add_argument("--account", required=True, help="account code, e.g. member:42:points")
    p_st.add_argument("--json", action="store_true", help="print JSON on stdout")

    p_li = sub.add_parser("liability", help="the liability roll-forward of a window, from postings (§7)")
    common(p_li)
    window(p_li)
    p_li.add_argument("--json", action="store_true", help="print JSON on stdout")
    p_li.add_argument("--out", default=None, help="also write the JSON to this file (atomically)")
