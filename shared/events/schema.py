"""DDL of the events kernel (§3.8, §8), instantiated in each service's schema by a migration.

No foreign keys to `tenants` or `webhooks` on the hot tables: the writer always takes the tenant from
its key and the delivery rows are selected from `webhooks` in the same statement, while a key would
take a share lock on one hot row per business write.
"""

from __future__ import annotations

import re

__all__ = ["events_downgrade_sql", "events_upgrade_sql"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_UPGRADE = r"""
-- The outbox: one row per business change, written in the change's own transaction.
CREATE TABLE {s}.events (
    tenant_id    text NOT NULL,
    event_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    type         text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    data         jsonb NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_by_seq ON {s}.events (tenant_id, seq);

CREATE TABLE {s}.webhooks (
    tenant_id    text NOT NULL REFERENCES {s}.tenants (tenant_id),
    webhook_id   text NOT NULL CHECK (webhook_id ~ '^[A-Za-z0-9_-]{{1,64}}$'),
    url          text NOT NULL CHECK (url ~ '^https?://'),
    secret       text NOT NULL CHECK (length(secret) BETWEEN 16 AND 200),
    event_types  text[] NOT NULL DEFAULT '{{}}',
    active       boolean NOT NULL DEFAULT true,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, webhook_id)
);

-- One row per (event, subscription); the dispatcher leases due rows with SKIP LOCKED.
CREATE TABLE {s}.webhook_deliveries (
    tenant_id        text NOT NULL,
    delivery_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    webhook_id       text NOT NULL,
    event_id         uuid NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX webhook_deliveries_due ON {s}.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON {s}.webhook_deliveries (tenant_id, webhook_id, seq);

-- Every job run, for operators and the nightly checks.
CREATE TABLE {s}.job_runs (
    run_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL,
    tenant_id    text,
    as_of        timestamptz NOT NULL,
    trigger      text NOT NULL CHECK (trigger IN ('scheduler', 'cli', 'http', 'test')),
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
    processed    integer NOT NULL DEFAULT 0,
    batches      integer NOT NULL DEFAULT 0,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz
);
CREATE INDEX job_runs_by_job ON {s}.job_runs (job, run_id);
"""

_DOWNGRADE = """
DROP TABLE IF EXISTS {s}.job_runs;
DROP TABLE IF EXISTS {s}.webhook_deliveries;
DROP TABLE IF EXISTS {s}.webhooks;
DROP TABLE IF EXISTS {s}.events;
"""


def _checked(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    return schema


def events_upgrade_sql(schema: str) -> str:
    return _UPGRADE.format(s=_checked(schema))


def events_downgrade_sql(schema: str) -> str:
    return _DOWNGRADE.format(s=_checked(schema))
