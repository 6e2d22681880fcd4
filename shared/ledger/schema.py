"""The ledger's tables and the rules PostgreSQL enforces on them (DESIGN §4.1).

Each service instantiates this DDL in its own schema from its first migration. The text is frozen
once a migration uses it: a later change to the kernel ships as a new constant and a new migration.

What the database guarantees, whoever connects and whatever SQL they send:
- a leg's asset is its account's asset (composite foreign key);
- every INSERT into postings balances per asset, has at least two legs per entry, and targets an
  entry header written in the same transaction (statement trigger over the inserted rows);
- every entry header has legs by COMMIT (deferred constraint trigger);
- postings and entry headers are never updated or deleted (guard triggers, TRUNCATE included);
- tracked balances change only from inside the posting trigger, which locks the touched accounts in
  (tenant, account id) order so concurrent entries never deadlock;
- no overdraft: a CHECK on the account row, evaluated by the very UPDATE that applies a posting;
- one entry per idempotency key, one reversal per entry (unique constraints).
"""

from __future__ import annotations

import re

__all__ = [
    "kernel_downgrade_sql",
    "kernel_upgrade_sql",
    "post_entry_generic_plan_downgrade_sql",
    "post_entry_generic_plan_upgrade_sql",
]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_UPGRADE = r"""
CREATE TABLE {s}.tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9_-]{{1,64}}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    currency    text NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{{3}}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {s}.api_keys (
    tenant_id   text NOT NULL REFERENCES {s}.tenants (tenant_id),
    key_id      text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_-]{{1,64}}$'),
    key_hash    bytea NOT NULL UNIQUE,
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['admin', 'client'] AND cardinality(scopes) > 0),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);

-- Idempotency records for HTTP writes (§3.3): claimed in the write's own transaction.
CREATE TABLE {s}.idempotency_keys (
    tenant_id     text NOT NULL REFERENCES {s}.tenants (tenant_id),
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   smallint,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, scope, key)
);

CREATE TABLE {s}.accounts (
    tenant_id   text NOT NULL REFERENCES {s}.tenants (tenant_id),
    account_id  bigint GENERATED ALWAYS AS IDENTITY,
    code        text NOT NULL CHECK (length(code) BETWEEN 1 AND 200),
    asset       text NOT NULL CHECK (asset ~ '^[A-Z]{{3}}$'),
    owner_id    text,
    normal_side text NOT NULL DEFAULT 'credit' CHECK (normal_side IN ('debit', 'credit')),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_must_not_exceed_credits  boolean NOT NULL DEFAULT false,
    credits_must_not_exceed_debits  boolean NOT NULL DEFAULT false,
    track_balance  boolean NOT NULL DEFAULT true,
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id),
    UNIQUE (tenant_id, code),
    UNIQUE (tenant_id, account_id, asset),
    CONSTRAINT accounts_one_limit CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    CONSTRAINT accounts_limit_needs_tracking CHECK (track_balance OR NOT (debits_must_not_exceed_credits OR credits_must_not_exceed_debits)),
    CONSTRAINT accounts_untracked_has_no_counters CHECK (track_balance OR (debits_posted = 0 AND credits_posted = 0)),
    CONSTRAINT accounts_no_overdraft_debit CHECK (NOT debits_must_not_exceed_credits OR debits_posted <= credits_posted),
    CONSTRAINT accounts_no_overdraft_credit CHECK (NOT credits_must_not_exceed_debits OR credits_posted <= debits_posted)
);

-- No foreign key to tenants here: every entry's legs reference accounts of its tenant (and a header
-- without legs cannot commit), so the tenant is checked already; a direct key would take a share
-- lock on the tenant row per entry, a hot row under concurrency (measured in bench/ledger.py).
CREATE TABLE {s}.entries (
    tenant_id         text NOT NULL,
    entry_id          bigint GENERATED ALWAYS AS IDENTITY,
    kind              text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    idempotency_key   text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    legs_hash         bytea NOT NULL,
    reverses_entry_id bigint,
    effective_at      timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    reason            text,
    source_ref        text,
    metadata          jsonb,
    -- the transaction that wrote the header: only that transaction may add its legs
    txid              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (tenant_id, entry_id),
    CONSTRAINT entries_idempotency_key UNIQUE (tenant_id, idempotency_key),
    CONSTRAINT entries_reversed_once UNIQUE (tenant_id, reverses_entry_id),
    CONSTRAINT entries_reverses_fk FOREIGN KEY (tenant_id, reverses_entry_id) REFERENCES {s}.entries (tenant_id, entry_id)
);

CREATE TABLE {s}.postings (
    tenant_id   text NOT NULL,
    entry_id    bigint NOT NULL,
    leg         smallint NOT NULL CHECK (leg >= 1),
    account_id  bigint NOT NULL,
    asset       text NOT NULL,
    amount      bigint NOT NULL CONSTRAINT postings_amount_nonzero CHECK (amount <> 0),
    PRIMARY KEY (tenant_id, entry_id, leg),
    CONSTRAINT postings_entry_fk FOREIGN KEY (tenant_id, entry_id) REFERENCES {s}.entries (tenant_id, entry_id),
    CONSTRAINT postings_leg_asset_is_account_asset FOREIGN KEY (tenant_id, account_id, asset)
        REFERENCES {s}.accounts (tenant_id, account_id, asset)
);
CREATE INDEX postings_account_history ON {s}.postings (tenant_id, account_id, entry_id) INCLUDE (amount);
CREATE INDEX entries_effective ON {s}.entries (tenant_id, effective_at, entry_id);

-- Legs balance, at least two, header from this transaction; then tracked balances move, locked in order.
CREATE FUNCTION {s}.postings_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    bad record;
BEGIN
    SELECT l.tenant_id, l.entry_id INTO bad
      FROM (SELECT n.tenant_id, n.entry_id, n.asset, sum(n.amount) AS total, count(*) AS legs
              FROM new_legs n GROUP BY n.tenant_id, n.entry_id, n.asset) l
     GROUP BY l.tenant_id, l.entry_id
    HAVING sum(l.legs) < 2 OR bool_or(l.total <> 0)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % of tenant % is unbalanced or has fewer than two legs', bad.entry_id, bad.tenant_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_balanced';
    END IF;

    SELECT e.tenant_id, e.entry_id INTO bad
      FROM {s}.entries e
     WHERE (e.tenant_id, e.entry_id) IN (SELECT n.tenant_id, n.entry_id FROM new_legs n)
       AND e.txid <> pg_current_xact_id()
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % of tenant % was committed earlier: its legs are closed', bad.entry_id, bad.tenant_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_closed';
    END IF;

    PERFORM 1 FROM {s}.accounts a
      WHERE (a.tenant_id, a.account_id) IN (SELECT n.tenant_id, n.account_id FROM new_legs n)
        AND a.track_balance
      ORDER BY a.tenant_id, a.account_id
      FOR NO KEY UPDATE;

    UPDATE {s}.accounts a
       SET debits_posted = a.debits_posted + d.debits,
           credits_posted = a.credits_posted + d.credits,
           version = a.version + 1
      FROM (SELECT n.tenant_id, n.account_id,
                   coalesce(sum(n.amount) FILTER (WHERE n.amount > 0), 0) AS debits,
                   coalesce(-sum(n.amount) FILTER (WHERE n.amount < 0), 0) AS credits
              FROM new_legs n GROUP BY n.tenant_id, n.account_id) d
     WHERE a.tenant_id = d.tenant_id AND a.account_id = d.account_id AND a.track_balance;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER postings_apply AFTER INSERT ON {s}.postings
    REFERENCING NEW TABLE AS new_legs FOR EACH STATEMENT EXECUTE FUNCTION {s}.postings_apply();

-- A header whose legs never came is refused at COMMIT.
CREATE FUNCTION {s}.entries_have_legs() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {s}.postings p WHERE p.tenant_id = NEW.tenant_id AND p.entry_id = NEW.entry_id) THEN
        RAISE EXCEPTION 'entry % of tenant % has no legs', NEW.entry_id, NEW.tenant_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_balanced';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE CONSTRAINT TRIGGER entries_have_legs AFTER INSERT ON {s}.entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {s}.entries_have_legs();

CREATE FUNCTION {s}.journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '% on %.% is refused: the journal is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON {s}.postings
    FOR EACH ROW EXECUTE FUNCTION {s}.journal_is_append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON {s}.postings
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.journal_is_append_only();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON {s}.entries
    FOR EACH ROW EXECUTE FUNCTION {s}.journal_is_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON {s}.entries
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.journal_is_append_only();

-- Counters move only from inside postings_apply (trigger depth 2); identity and asset never move.
CREATE FUNCTION {s}.accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.account_id <> OLD.account_id OR NEW.asset <> OLD.asset
       OR NEW.code <> OLD.code OR NEW.track_balance <> OLD.track_balance OR NEW.normal_side <> OLD.normal_side THEN
        RAISE EXCEPTION 'account % identity, asset and tracking are immutable', OLD.code
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.debits_posted <> OLD.debits_posted OR NEW.credits_posted <> OLD.credits_posted
        OR NEW.version <> OLD.version) AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'balance of account % changes only through postings', OLD.code
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER accounts_guard BEFORE UPDATE OR DELETE ON {s}.accounts
    FOR EACH ROW EXECUTE FUNCTION {s}.accounts_guard();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON {s}.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.journal_is_append_only();

-- One round trip per write: header (idempotent by key and legs hash) and legs in one call.
-- Returns the entry id and whether it was a replay; raises LG409 on a conflicting replay.
CREATE FUNCTION {s}.post_entry(
    p_tenant text, p_kind text, p_key text, p_hash bytea,
    p_codes text[], p_amounts bigint[],
    p_effective_at timestamptz, p_reason text, p_source_ref text, p_metadata jsonb,
    p_reverses bigint DEFAULT NULL,
    OUT entry_id bigint, OUT replayed boolean
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_hash bytea;
BEGIN
    INSERT INTO {s}.entries AS e (tenant_id, kind, idempotency_key, legs_hash, reverses_entry_id,
                                  effective_at, reason, source_ref, metadata)
    VALUES (p_tenant, p_kind, p_key, p_hash, p_reverses, coalesce(p_effective_at, now()),
            p_reason, p_source_ref, p_metadata)
    ON CONFLICT ON CONSTRAINT entries_idempotency_key DO NOTHING
    RETURNING e.entry_id INTO entry_id;

    IF entry_id IS NULL THEN
        SELECT e.entry_id, e.legs_hash INTO entry_id, v_hash
          FROM {s}.entries e WHERE e.tenant_id = p_tenant AND e.idempotency_key = p_key;
        IF v_hash IS DISTINCT FROM p_hash THEN
            RAISE EXCEPTION 'idempotency key % was used for a different entry', p_key USING ERRCODE = 'LG409';
        END IF;
        replayed := true;
        RETURN;
    END IF;

    -- An unknown code leaves account_id NULL: the NOT NULL check refuses the row (-> account-not-found).
    INSERT INTO {s}.postings (tenant_id, entry_id, leg, account_id, asset, amount)
    SELECT p_tenant, post_entry.entry_id, l.ord, a.account_id, a.asset, l.amount
      FROM unnest(p_codes, p_amounts) WITH ORDINALITY AS l(code, amount, ord)
      LEFT JOIN {s}.accounts a ON a.tenant_id = p_tenant AND a.code = l.code;
    replayed := false;
END
$fn$;
"""

_DOWNGRADE = """
DROP FUNCTION IF EXISTS {s}.post_entry(text, text, text, bytea, text[], bigint[], timestamptz, text, text, jsonb, bigint);
DROP TABLE IF EXISTS {s}.postings;
DROP TABLE IF EXISTS {s}.entries;
DROP TABLE IF EXISTS {s}.accounts;
DROP TABLE IF EXISTS {s}.idempotency_keys;
DROP TABLE IF EXISTS {s}.api_keys;
DROP TABLE IF EXISTS {s}.tenants;
DROP FUNCTION IF EXISTS {s}.postings_apply();
DROP FUNCTION IF EXISTS {s}.entries_have_legs();
DROP FUNCTION IF EXISTS {s}.journal_is_append_only();
DROP FUNCTION IF EXISTS {s}.accounts_guard();
"""


_POST_ENTRY_SIGNATURE = (
    "{s}.post_entry(text, text, text, bytea, text[], bigint[], timestamptz, text, text, jsonb, bigint)"
)

# Kernel revision 2. The legs arrive as arrays: a custom plan knows their length and so always
# looks cheaper than the generic one, and every call planned the postings INSERT again (about a
# fifth of post_entry's time). The generic plan is the same index nested loop over the legs.
_POST_ENTRY_GENERIC_PLAN = f"ALTER FUNCTION {_POST_ENTRY_SIGNATURE} SET plan_cache_mode = force_generic_plan;"
_POST_ENTRY_CHOSEN_PLAN = f"ALTER FUNCTION {_POST_ENTRY_SIGNATURE} RESET plan_cache_mode;"


def _check(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    return schema


def kernel_upgrade_sql(schema: str) -> str:
    """The kernel's DDL (tenants, keys, idempotency, ledger) qualified with `schema`."""
    return _UPGRADE.format(s=_check(schema))


def kernel_downgrade_sql(schema: str) -> str:
    return _DOWNGRADE.format(s=_check(schema))


def post_entry_generic_plan_upgrade_sql(schema: str) -> str:
    """Kernel revision 2: `post_entry` plans its statements once per connection, not once per call."""
    return _POST_ENTRY_GENERIC_PLAN.format(s=_check(schema))


def post_entry_generic_plan_downgrade_sql(schema: str) -> str:
    return _POST_ENTRY_CHOSEN_PLAN.format(s=_check(schema))
