"""Programme rules (§5.1): defaults until configured, policies normalised to an explicit `n`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.loyalty.program import repository
from services.loyalty.program.schemas import ExpiryPolicy, Program, ProgramConfig, TierWindow
from shared.errors import DomainError

__all__ = ["ActiveProgram", "etag", "load_program", "normalise", "program_of", "put_program", "read_program"]

# The parameter each kind takes, and its default when absent; kinds not listed take none.
_EXPIRY_N = {"rolling_days": 365, "end_of_month_after": 12, "end_of_year": 1}
_EXPIRY_MIN = {"rolling_days": 1, "end_of_month_after": 0, "end_of_year": 0}
_EXPIRY_MAX = {"rolling_days": 36_500, "end_of_month_after": 1_200, "end_of_year": 100}
_WINDOW_N = {"rolling_days": 365}


class ActiveProgram(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules run on: the full config and its version (0 = the defaults)."""

    config: ProgramConfig
    version: int
    updated_at: datetime | None


def etag(version: int) -> str:
    return f'"program-{version}"'


def _policy_n(field: str, kind: str, n: int | None, defaults: dict[str, int], low: int, high: int) -> int | None:
    if kind not in defaults:
        if n is not None:
            raise DomainError("invalid-policy", 422, f"{field}: `{kind}` takes no n")
        return None
    n = defaults[kind] if n is None else n
    if not low <= n <= high:
        raise DomainError("invalid-policy", 422, f"{field}: `{kind}` needs n between {low} and {high}")
    return n


def normalise(config: ProgramConfig) -> ProgramConfig:
    """The config with every policy's n explicit; 422 `invalid-policy` for an n that does not fit."""
    kind = config.expiry.kind
    expiry_n = _policy_n("expiry", kind, config.expiry.n, _EXPIRY_N, _EXPIRY_MIN.get(kind, 0), _EXPIRY_MAX.get(kind, 0))
    window_n = _policy_n("tier_window", config.tier_window.kind, config.tier_window.n, _WINDOW_N, 1, 36_500)
    return msgspec.structs.replace(
        config,
        expiry=ExpiryPolicy(kind=config.expiry.kind, n=expiry_n),
        tier_window=TierWindow(kind=config.tier_window.kind, n=window_n),
    )


def program_of(config: Any, version: int, updated_at: datetime | None) -> ActiveProgram:
    """The programme from its stored columns, read alone or joined into a caller's context statement;
    the defaults (version 0) when the tenant has none (`config` NULL)."""
    if config is None:
        return ActiveProgram(config=ProgramConfig(), version=0, updated_at=None)
    return ActiveProgram(config=msgspec.convert(config, ProgramConfig), version=version, updated_at=updated_at)


def _active(row: asyncpg.Record) -> ActiveProgram:
    return program_of(row["config"], row["version"], row["updated_at"])


async def load_program(conn: asyncpg.Connection, tenant_id: str) -> ActiveProgram:
    row = await repository.fetch_program(conn, tenant_id)
    return program_of(None, 0, None) if row is None else _active(row)


def _view(program: ActiveProgram) -> Program:
    return Program(version=program.version, updated_at=program.updated_at, config=program.config)


async def read_program(conn: asyncpg.Connection, tenant_id: str) -> Program:
    return _view(await load_program(conn, tenant_id))


async def put_program(conn: asyncpg.Connection, tenant_id: str, config: ProgramConfig, if_match: str | None) -> Program:
    """Replace the programme (PUT); `If-Match` must name the current version when given (412)."""
    config = normalise(config)
    if if_match is not None:
        current = await load_program(conn, tenant_id)
        if if_match.strip() not in {etag(current.version), "*"}:
            raise DomainError("precondition-failed", 412, f"the programme is at {etag(current.version)}")
    row = await repository.store_program(conn, tenant_id, msgspec.to_builtins(config))
    return _view(await load_program(conn, tenant_id) if row is None else _active(row))
