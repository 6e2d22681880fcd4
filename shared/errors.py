"""Problem types (RFC 9457) and the one place where database errors become problems (§3.2)."""

from __future__ import annotations

import asyncpg
import msgspec

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "DomainError",
    "Problem",
    "problem_from_database_error",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem. `type` is a stable slug clients can switch on."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


class DomainError(Exception):
    """A refusal the client can act on. Raised by services; turned into a problem by the app."""

    def __init__(self, type: str, status: int, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.type = type
        self.status = status
        self.detail = detail
        self.title = title or type.replace("-", " ").capitalize()

    def problem(self, instance: str | None = None) -> Problem:
        return Problem(type=self.type, title=self.title, status=self.status, detail=self.detail, instance=instance)


# SQLSTATEs raised by our own SQL functions.
_CUSTOM_SQLSTATES = {
    "LG409": ("idempotency-conflict", 409),
}

# Constraint name -> (problem type, status). Unknown constraints fall back per error class.
_CONSTRAINTS = {
    "accounts_no_overdraft_debit": ("insufficient-balance", 409),
    "accounts_no_overdraft_credit": ("insufficient-balance", 409),
    "entries_balanced": ("unbalanced-entry", 422),
    "entries_closed": ("unbalanced-entry", 422),
    "entries_reversed_once": ("already-reversed", 409),
    "entries_idempotency_key": ("idempotency-conflict", 409),
    "postings_amount_nonzero": ("invalid-amount", 422),
    "postings_leg_asset_is_account_asset": ("asset-mismatch", 422),
}


def problem_from_database_error(exc: asyncpg.PostgresError) -> DomainError | None:
    """The refusal a database error stands for, or None when it is a fault of ours (a 500)."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    detail = getattr(exc, "message", None) or str(exc)
    if sqlstate in _CUSTOM_SQLSTATES:
        kind, status = _CUSTOM_SQLSTATES[sqlstate]
        return DomainError(kind, status, detail)
    if isinstance(exc, asyncpg.NotNullViolationError) and (exc.table_name, exc.column_name) == (
        "postings",
        "account_id",
    ):
        return DomainError("account-not-found", 404, "a leg names an account that does not exist")
    constraint = getattr(exc, "constraint_name", None)
    if constraint in _CONSTRAINTS:
        kind, status = _CONSTRAINTS[constraint]
        return DomainError(kind, status, detail)
    if isinstance(exc, asyncpg.UniqueViolationError):
        return DomainError("conflict", 409, "the resource already exists in another state")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return DomainError("reference-not-found", 422, "a referenced resource does not exist")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.NotNullViolationError):
        return DomainError("constraint-violated", 422, detail)
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return DomainError("concurrent-update", 409, "a concurrent write won; retry with the same idempotency key")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return DomainError("timeout", 503, "the database did not answer in time; retry")
    if isinstance(exc, asyncpg.DataError):
        return DomainError("invalid-input", 422, detail)
    return None
