"""The journal export (DESIGN §7): one row per posting, streamed with constant memory, self-checking.

Rows are in (entry_id, leg) order and carry both clocks in UTC. A window `[from, to)` selects entries
by one clock (`basis`: `created`, the reproducible default, or `effective`; see shared/ledger/reports.py).
Everything is read in one repeatable-read snapshot: first the summary (row count, debit and credit
totals per asset), then the rows, so the summary describes exactly the rows that follow. A receiver
checks completeness against it; a stream cut short has no summary at its end.

- `csv`: PostgreSQL's own `COPY ... TO STDOUT (FORMAT csv, HEADER)` bytes, passed through untouched,
  then one last line `#` + the summary as JSON.
- `jsonl`: one JSON object per posting, then one last line `{"trailer": summary}`.
- `parquet`: row groups of at most `PARQUET_BATCH` rows; the summary as JSON under the file metadata key
  `ledger_export` (a Parquet file is complete only with its footer, so the check is built in).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from shared.ledger.reports import Basis
from shared.timestamps import EARLIEST, LATEST

__all__ = [
    "COLUMNS",
    "MEDIA_TYPES",
    "ExportSummary",
    "ExportTotals",
    "ExportWindow",
    "Format",
    "export_entries",
    "parquet_schema",
    "parse_csv_trailer",
]

Format = Literal["csv", "jsonl", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
COLUMNS = (
    "entry_id",
    "leg",
    "effective_at",
    "created_at",
    "kind",
    "account",
    "owner_id",
    "debit",
    "credit",
    "asset",
    "reason",
    "source_ref",
)
FORMAT_VERSION = 1
PARQUET_BATCH = 16_384  # rows per row group and per fetch: bounds memory (Python rows are ~1 KB each)
JSONL_BATCH = 10_000
# Exports outlive the request statement timeout by design; bounded all the same.
STATEMENT_TIMEOUT = "30min"


class ExportWindow(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    from_: datetime | None = None
    to: datetime | None = None
    basis: Basis = "created"


class ExportTotals(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    debits: int
    credits: int


class ExportSummary(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int
    tenant_id: str
    basis: Basis
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    rows: int
    totals: list[ExportTotals]
    generated_at: datetime


# RFC 3339 in UTC from the session's text output (TimeZone UTC, set per export): '2025-01-02T03:04:05.6Z'.
# Trailing zeros of the fraction are dropped. Two string replaces cost far less than to_char (measured).
_UTC_TEXT = "replace(translate(e.{t}::text, ' ', 'T'), '+00', 'Z')"
_EPOCH_US = "(extract(epoch FROM e.{t}) * 1000000)::bigint"

# The basis picks the filtered column; both texts are fixed at import, values are always parameters.
_ROWS = """
SELECT p.entry_id, p.leg, {times}, e.kind, a.code AS account, a.owner_id,
       greatest(p.amount, 0) AS debit, greatest(-p.amount, 0) AS credit, p.asset, e.reason, e.source_ref
  FROM entries e
  JOIN postings p ON p.tenant_id = e.tenant_id AND p.entry_id = e.entry_id
  JOIN accounts a ON a.tenant_id = p.tenant_id AND a.account_id = p.account_id
 WHERE e.tenant_id = $1 AND e.{basis} >= $2 AND e.{basis} < $3
 ORDER BY p.entry_id, p.leg
"""

_SUMMARY = """
SELECT p.asset, count(*) AS rows,
       coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0)::bigint AS debits,
       coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0)::bigint AS credits
  FROM entries e
  JOIN postings p ON p.tenant_id = e.tenant_id AND p.entry_id = e.entry_id
 WHERE e.tenant_id = $1 AND e.{basis} >= $2 AND e.{basis} < $3
 GROUP BY p.asset ORDER BY p.asset
"""


def _times(expr: str) -> str:
    return ", ".join(f"{expr.format(t=col)} AS {col}" for col in ("effective_at", "created_at"))


def _by_basis(template: str, **parts: str) -> dict[str, str]:
    return {b: template.format(basis=f"{b}_at", **parts) for b in ("created", "effective")}


_TEXT_ROWS = _by_basis(_ROWS, times=_times(_UTC_TEXT))
_EPOCH_ROWS = _by_basis(_ROWS, times=_times(_EPOCH_US))
_SUMMARIES = _by_basis(_SUMMARY)

_encode = msgspec.json.Encoder().encode


def _bounds(window: ExportWindow) -> tuple[str, datetime, datetime]:
    # An open side is the range every stored timestamp lies in (shared.timestamps refuses the rest).
    return window.tenant_id, window.from_ or EARLIEST, window.to or LATEST


async def _summary(conn: asyncpg.Connection, window: ExportWindow) -> ExportSummary:
    rows = await conn.fetch(_SUMMARIES[window.basis], *_bounds(window))
    return ExportSummary(
        format_version=FORMAT_VERSION,
        tenant_id=window.tenant_id,
        basis=window.basis,
        from_=window.from_,
        to=window.to,
        rows=sum(r["rows"] for r in rows),
        totals=[ExportTotals(asset=r["asset"], debits=r["debits"], credits=r["credits"]) for r in rows],
        generated_at=await conn.fetchval("SELECT clock_timestamp()"),
    )


async def export_entries(
    conn: asyncpg.Connection,
    window: ExportWindow,
    fmt: Format,
    on_rows: Callable[[int, ExportSummary], None] | None = None,
) -> AsyncIterator[bytes]:
    """The export as byte chunks; `on_rows(n, summary)` after each chunk (n approximate for CSV).

    Holds `conn` in a read-only repeatable-read transaction until the iterator ends or is closed.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        await conn.execute("SET LOCAL timezone = 'UTC'")  # the text times above are UTC only so
        summary = await _summary(conn, window)
        progress = (lambda n: on_rows(n, summary)) if on_rows else (lambda n: None)
        if fmt == "csv":
            async for chunk in _csv(conn, window, progress):
                yield chunk
            yield b"#" + _encode(summary) + b"\n"
        elif fmt == "jsonl":
            async for chunk in _jsonl(conn, window, progress):
                yield chunk
            yield _encode({"trailer": summary}) + b"\n"
        else:
            async for chunk in _parquet(conn, window, summary, progress):
                yield chunk


async def _csv(conn: asyncpg.Connection, window: ExportWindow, progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    """COPY's output through a small bounded queue: the COPY waits while the reader is slow."""
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)

    async def sink(data: bytes) -> None:
        await queue.put(bytes(data))

    async def produce() -> None:
        try:
            await conn.copy_from_query(
                _TEXT_ROWS[window.basis], *_bounds(window), output=sink, format="csv", header=True
            )
        except BaseException as exc:  # handed to the reader, which raises it in the response's task
            await queue.put(exc)
            raise
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        header = True
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            lines = item.count(b"\n") - (1 if header else 0)  # a quoted newline in a reason overcounts
            header = False
            yield item
            progress(lines)
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _batches(
    conn: asyncpg.Connection, sql: str, window: ExportWindow, size: int
) -> AsyncIterator[list[asyncpg.Record]]:
    cursor = await conn.cursor(sql, *_bounds(window))
    while batch := await cursor.fetch(size):
        yield batch


async def _jsonl(
    conn: asyncpg.Connection, window: ExportWindow, progress: Callable[[int], None]
) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    async for batch in _batches(conn, _TEXT_ROWS[window.basis], window, JSONL_BATCH):
        yield encoder.encode_lines([dict(r) for r in batch])
        progress(len(batch))


class _Chunks:
    """A write-only file for pyarrow that keeps what was written until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_schema(summary: ExportSummary) -> Any:
    import pyarrow as pa  # imported on use: a heavy import the services need only for this format

    utc = pa.timestamp("us", tz="UTC")
    fields = [
        ("entry_id", pa.int64()),
        ("leg", pa.int16()),
        ("effective_at", utc),
        ("created_at", utc),
        ("kind", pa.string()),
        ("account", pa.string()),
        ("owner_id", pa.string()),
        ("debit", pa.int64()),
        ("credit", pa.int64()),
        ("asset", pa.string()),
        ("reason", pa.string()),
        ("source_ref", pa.string()),
    ]
    return pa.schema(fields, metadata={"ledger_export": _encode(summary)})


async def _parquet(
    conn: asyncpg.Connection, window: ExportWindow, summary: ExportSummary, progress: Callable[[int], None]
) -> AsyncIterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(summary)
    sink = _Chunks()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        async for batch in _batches(conn, _EPOCH_ROWS[window.basis], window, PARQUET_BATCH):
            columns = list(zip(*batch, strict=True))
            arrays = [
                pa.array(values, type=pa.int64()).cast(field.type)
                if pa.types.is_timestamp(field.type)
                else pa.array(values, type=field.type)
                for values, field in zip(columns, schema, strict=True)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            progress(len(batch))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


def parse_csv_trailer(line: bytes | str) -> ExportSummary:
    """The summary of a CSV export from its last line (`#` + JSON)."""
    text = line.decode() if isinstance(line, bytes) else line
    if not text.startswith("#"):
        raise ValueError("not an export trailer: it starts with '#'")
    return msgspec.json.decode(text[1:], type=ExportSummary)
