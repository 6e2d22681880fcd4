"""DDL of the finance kernel (§7), instantiated in each service's schema by a migration.

- `ledger_verifications`: the result of every `ledger verify` run by the `verify-ledger` job, per tenant,
  with its time, so "when did the books last tie out?" has an answer (admin endpoint, metrics).
- `entries_created`: exports and reports select by creation time (the reproducible clock); without this
  index a window on `created_at` reads the tenant's whole journal. One more btree on a column that only
  grows at its right edge: cheap on the posting path.
"""

from __future__ import annotations

import re

__all__ = ["finance_downgrade_sql", "finance_upgrade_sql"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_UPGRADE = r"""
CREATE TABLE {s}.ledger_verifications (
    tenant_id        text NOT NULL,
    verification_id  bigint GENERATED ALWAYS AS IDENTITY,
    as_of            timestamptz NOT NULL,
    checked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    ok               boolean NOT NULL,
    checks           text[] NOT NULL,
    violation_count  integer NOT NULL CHECK (violation_count >= 0),
    violations       jsonb NOT NULL,
    CONSTRAINT ledger_verifications_ok_means_none CHECK (ok = (violation_count = 0)),
    PRIMARY KEY (tenant_id, verification_id)
);

CREATE INDEX entries_created ON {s}.entries (tenant_id, created_at, entry_id);
"""

_DOWNGRADE = """
DROP INDEX IF EXISTS {s}.entries_created;
DROP TABLE IF EXISTS {s}.ledger_verifications;
"""


def _checked(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    return schema


def finance_upgrade_sql(schema: str) -> str:
    return _UPGRADE.format(s=_checked(schema))


def finance_downgrade_sql(schema: str) -> str:
    return _DOWNGRADE.format(s=_checked(schema))
