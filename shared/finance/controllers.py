"""Finance endpoints of both services (admin): journal export, trial balance, statements, verifications,
and the liability roll-forward (the service's `LiabilitySpec`, from the app's state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType as MediaType
from litestar.openapi.spec import OpenAPIResponse as SpecResponse
from litestar.openapi.spec import Operation, Schema
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from shared.auth import Principal, requires_admin
from shared.errors import DomainError
from shared.finance.verifications import LedgerVerification, latest_verification
from shared.http import problem_responses
from shared.ledger.export import MEDIA_TYPES, ExportWindow, Format, export_entries
from shared.ledger.liability import LiabilityReport, LiabilitySpec, liability_report
from shared.ledger.reports import Basis, Statement, TrialBalance, statement, trial_balance
from shared.pagination import decode_cursor
from shared.timestamps import checked_time

__all__ = ["FinanceController", "LiabilityController"]

# Reports sum a tenant's whole journal: more than a request's default statement timeout allows.
REPORT_STATEMENT_TIMEOUT = "120s"

# Times arrive as strings and are parsed here: Litestar would also take a bare number ("0.5") as a time.
_DATE_TIME = {"format": "date-time"}
Time = Annotated[
    str | None,
    QueryParameter(
        description="RFC 3339 (UTC without an offset); 1970 ≤ t < 3000; default now",
        max_length=64,
        schema_extra=_DATE_TIME,
    ),
]
From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="Window start, inclusive (RFC 3339); default: open",
        max_length=64,
        schema_extra=_DATE_TIME,
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        name="to", description="Window end, exclusive (RFC 3339); default: open", max_length=64, schema_extra=_DATE_TIME
    ),
]
BasisParam = Annotated[
    Basis,
    QueryParameter(
        description="Which clock selects entries: `created` (when written; reproducible, default) or "
        "`effective` (business time; back-dated entries restate the past)"
    ),
]
AccountCode = Annotated[str, PathParameter(min_length=1, max_length=200, pattern=r"^[^/\s]{1,200}$")]


def _time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, datetime)  # RFC 3339, strictly
    except msgspec.ValidationError:
        raise ValidationException(detail=f"{field} is not an RFC 3339 date-time") from None
    return checked_time(parsed, field)


def _window(from_: str | None, to: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = _time(from_, "from"), _time(to, "to")
    if start is not None and end is not None and start > end:
        raise DomainError("invalid-window", 422, "`from` must not be after `to`")
    return start, end


@dataclass
class ExportOperation(Operation):
    """The export's 200 is CSV, JSON Lines or Parquet by `format`: one content entry per media type."""

    def __post_init__(self) -> None:
        text = Schema(type="string")  # type: ignore[arg-type]
        binary = Schema(type="string", format="binary")  # type: ignore[arg-type]
        self.responses = dict(self.responses or {})
        self.responses["200"] = SpecResponse(
            description="The postings, then the summary (see docs/finance.md for the exact format)",
            content={
                MEDIA_TYPES["csv"]: MediaType(schema=text),
                MEDIA_TYPES["jsonl"]: MediaType(schema=text),
                MEDIA_TYPES["parquet"]: MediaType(schema=binary),
            },
        )


class FinanceController(Controller):
    path = "/v1/ledger"
    tags = ["finance"]
    guards = [requires_admin]

    @get(
        "/entries",
        operation_id="exportLedgerEntries",
        summary="Export the journal: one row per posting, streamed, with a completeness summary",
        description="Rows in (entry_id, leg) order, times in UTC, entries selected by `basis` in the "
        "half-open window [`from`, `to`). `csv` ends with a line `#` + summary JSON; `jsonl` ends with "
        '`{"trailer": summary}`; `parquet` carries the summary in the file metadata key `ledger_export`. '
        "The summary (row count, debit and credit totals per asset) is read in the same snapshot as the "
        "rows; a stream without it was cut short.",
        responses=problem_responses(401, 403, 422),
        operation_class=ExportOperation,
    )
    async def export(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        from_: From = None,
        to: To = None,
        basis: BasisParam = "created",
        format: Annotated[Format, QueryParameter(description="csv (default), jsonl or parquet")] = "csv",
    ) -> Stream:
        start, end = _window(from_, to)
        window = ExportWindow(tenant_id=request.user.tenant_id, from_=start, to=end, basis=basis)
        name = f"ledger-{window.tenant_id}-{basis}.{format}"
        return Stream(
            _stream(state.pool, window, format),
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @get(
        "/trial-balance",
        operation_id="getTrialBalance",
        summary="Every account's debit and credit totals and balance as of a time, with per-asset totals",
        description="Summed from postings (not account counters), so any past `as_of` works; `as_of` is "
        "inclusive, default now. With `basis=created` a past `as_of` gives the same numbers whatever is "
        "posted later. `totals[].balanced` proves Σ debits = Σ credits per asset.",
        responses=problem_responses(401, 403, 422),
    )
    async def trial_balance(
        self,
        request: Request[Principal, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        as_of: Time = None,
        basis: BasisParam = "created",
    ) -> TrialBalance:
        cut = _time(as_of, "as_of")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = '{REPORT_STATEMENT_TIMEOUT}'")
            return await trial_balance(conn, request.user.tenant_id, cut, basis)

    @get(
        "/accounts/{code:str}/statement",
        operation_id="listAccountStatement",
        summary="An account's statement: opening balance, lines with running balance, closing balance",
        description="Lines in (entry_id, leg) order inside [`from`, `to`) by `basis`; opening = everything "
        "before `from`, closing = opening + the window (on every page). Balances are on the account's "
        "normal side. Pages by `limit` and `cursor` (`next_cursor`).",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def statement(
        self,
        request: Request[Principal, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        code: AccountCode,
        from_: From = None,
        to: To = None,
        basis: BasisParam = "created",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(min_length=1, max_length=500)] = None,
    ) -> Statement:
        start, end = _window(from_, to)
        after = decode_cursor(cursor, (int, int)) if cursor is not None else None
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = '{REPORT_STATEMENT_TIMEOUT}'")
            return await statement(
                conn,
                request.user.tenant_id,
                code,
                from_=start,
                to=end,
                basis=basis,
                limit=limit,
                after=after,  # type: ignore[arg-type]
            )

    @get(
        "/verifications/latest",
        operation_id="getLatestLedgerVerification",
        summary="The latest recorded `ledger verify` of this tenant (the nightly verify-ledger job)",
        responses=problem_responses(401, 403, 404),
    )
    async def latest_verification(
        self, request: Request[Principal, Any, Any], conn: NamedDependency[asyncpg.Connection]
    ) -> LedgerVerification:
        return await latest_verification(conn, request.user.tenant_id)


class LiabilityController(Controller):
    path = "/v1/reports"
    tags = ["finance"]
    guards = [requires_admin]

    @get(
        "/liability",
        operation_id="getLiabilityReport",
        summary="The liability roll-forward: opening + movements by line = closing, per category and in total",
        description="What the programme owes its members (loyalty: points in PTS; referral: commission in the "
        "tenant's currency), summed from postings in the half-open window [`from`, `to`) by `basis`, so any "
        "past window works and, with `basis=created`, gives the same numbers whatever is posted later. Lines "
        "come from one table mapping entry kinds to lines; an unmapped kind shows in `other`. Loyalty adds the "
        "breakage rate (expired / issued over the window); referral the FIFO ageing of available commission "
        "(whole days since it became available, measured to `to` or to `generated_at`). See docs/finance.md.",
        responses=problem_responses(401, 403, 422),
    )
    async def liability(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        from_: From = None,
        to: To = None,
        basis: BasisParam = "created",
    ) -> LiabilityReport:
        start, end = _window(from_, to)
        spec: LiabilitySpec = state.liability
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = '{REPORT_STATEMENT_TIMEOUT}'")
            return await liability_report(conn, request.user.tenant_id, spec, from_=start, to=end, basis=basis)


async def _stream(pool: asyncpg.Pool, window: ExportWindow, fmt: Format) -> AsyncIterator[bytes]:
    """The export on a connection of its own, held for the stream's life (not the handler's)."""
    async with pool.acquire() as conn:
        async for chunk in export_entries(conn, window, fmt):
            yield chunk
