"""Programme rules: at most 3 levels (more is illegal pyramid selling in China), rates ≤ 100 %."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from services.referral.program import repository
from services.referral.program.schemas import Program, ProgramConfig, ProgramSettings
from shared.errors import DomainError

__all__ = [
    "MAX_DEPTH",
    "ActiveProgram",
    "etag",
    "is_eligible",
    "load_program",
    "program_from_row",
    "put_program",
    "read_program",
]

MAX_DEPTH = 3


class ActiveProgram(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules run on: the full config and its version (0 = the defaults)."""

    config: ProgramConfig
    version: int
    updated_at: datetime | None


def is_eligible(config: ProgramConfig, distributor_status: str | None) -> bool:
    """May this member earn commission (and invite under `approved`)? Suspension always says no."""
    if distributor_status == "suspended":
        return False
    return config.eligibility == "everyone" or distributor_status == "active"


def etag(version: int) -> str:
    return f'"program-{version}"'


def _validate(config: ProgramConfig) -> None:
    if config.depth > MAX_DEPTH:
        raise DomainError(
            "depth-not-allowed",
            422,
            f"depth {config.depth} refused: at most {MAX_DEPTH} levels may earn commission "
            "(more is illegal pyramid selling in China)",
        )
    checks = {"level_rates_bps": config.level_rates_bps} | {
        f"category_rates_bps.{name}": rates for name, rates in config.category_rates_bps.items()
    }
    for name in [*config.category_rates_bps, *config.excluded_categories]:
        if not 1 <= len(name) <= 64:
            raise DomainError("invalid-category", 422, "a category name has 1 to 64 characters")
    for field, rates in checks.items():
        if any(not 0 <= rate <= 10_000 for rate in rates):
            raise DomainError("invalid-rates", 422, f"{field}: every rate is 0 to 10000 bps")
        if len(rates) != config.depth:
            raise DomainError(
                "invalid-rates", 422, f"{field} needs one rate per level: {config.depth}, not {len(rates)}"
            )
        if sum(rates) > 10_000:
            raise DomainError(
                "rates-exceed-total", 422, f"{field} sums to {sum(rates)} bps; the levels may pay at most 10000"
            )


async def load_program(conn: asyncpg.Connection, tenant_id: str) -> ActiveProgram:
    return program_from_row(await repository.fetch_program(conn, tenant_id))


def program_from_row(row: asyncpg.Record | None) -> ActiveProgram:
    """The programme from its row's `config`, `version`, `updated_at` (no row or no config: the defaults)."""
    if row is None or row["config"] is None:
        return ActiveProgram(config=ProgramConfig(), version=0, updated_at=None)
    return ActiveProgram(
        config=msgspec.convert(row["config"], ProgramConfig), version=row["version"], updated_at=row["updated_at"]
    )


def _view(program: ActiveProgram) -> Program:
    fields = msgspec.structs.asdict(program.config)
    secret = fields.pop("loyalty_events_secret")
    return Program(
        version=program.version,
        updated_at=program.updated_at,
        config=ProgramSettings(**fields),
        loyalty_events_secret_set=secret is not None,
    )


async def read_program(conn: asyncpg.Connection, tenant_id: str) -> Program:
    return _view(await load_program(conn, tenant_id))


async def put_program(conn: asyncpg.Connection, tenant_id: str, config: ProgramConfig, if_match: str | None) -> Program:
    """Replace the programme (PUT); `If-Match` must name the current version when given (412)."""
    _validate(config)
    if if_match is not None:
        current = await load_program(conn, tenant_id)
        if if_match.strip() not in {etag(current.version), "*"}:
            raise DomainError("precondition-failed", 412, f"the programme is at {etag(current.version)}")
    row = await repository.store_program(conn, tenant_id, msgspec.to_builtins(config))
    return _view(
        await load_program(conn, tenant_id)
        if row is None
        else ActiveProgram(
            config=msgspec.convert(row["config"], ProgramConfig), version=row["version"], updated_at=row["updated_at"]
        )
    )
