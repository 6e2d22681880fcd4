"""The referral domain: programme, members and the invite tree, distributors, orders and commission
items, refunds, withdrawals.

Revision ID: 0003
Revises: 0002
"""

from shared.migrations import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- One row per tenant; the validated programme (services/referral/program/schemas.py) as JSON.
-- `version` is the rule version snapshotted on orders and the ETag of GET /v1/program.
CREATE TABLE referral.programs (
    tenant_id   text PRIMARY KEY REFERENCES referral.tenants (tenant_id),
    config      jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE referral.distributor_levels (
    tenant_id   text NOT NULL REFERENCES referral.tenants (tenant_id),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        text NOT NULL,
    rank        integer NOT NULL CHECK (rank >= 0),
    rates_bps   integer[] NOT NULL CHECK (cardinality(rates_bps) BETWEEN 1 AND 3 AND 0 <= ALL (rates_bps)
                                          AND 10000 >= ALL (rates_bps)),
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE referral.members (
    tenant_id           text NOT NULL REFERENCES referral.tenants (tenant_id),
    member_id           text NOT NULL CHECK (length(member_id) BETWEEN 1 AND 64),
    invite_code         text NOT NULL,
    registered_at       timestamptz NOT NULL,
    device_id           text,
    ip                  text,
    inviter_id          text,
    bound_at            timestamptz,
    binding_flagged     boolean NOT NULL DEFAULT false,
    flag_reason         text,
    -- NULL: not a distributor by approval (under `everyone` every member is one unless suspended)
    distributor_status  text CHECK (distributor_status IN ('active', 'suspended')),
    distributor_level   text,
    distributor_since   timestamptz,
    order_count         integer NOT NULL DEFAULT 0 CHECK (order_count >= 0),
    paid_amount         bigint NOT NULL DEFAULT 0,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id),
    CONSTRAINT members_invite_code_unique UNIQUE (tenant_id, invite_code),
    CONSTRAINT members_inviter_fk FOREIGN KEY (tenant_id, inviter_id) REFERENCES referral.members (tenant_id, member_id),
    CONSTRAINT members_no_self_referral CHECK (inviter_id IS DISTINCT FROM member_id),
    CONSTRAINT members_bound_together CHECK ((inviter_id IS NULL) = (bound_at IS NULL))
);
CREATE INDEX members_by_inviter ON referral.members (tenant_id, inviter_id, bound_at) WHERE inviter_id IS NOT NULL;

-- Closure table of the invite tree, depth 1..3 (the deepest a programme may pay):
-- a member's ancestors, and a member's team per level, are each one index range.
CREATE TABLE referral.referral_paths (
    tenant_id    text NOT NULL,
    member_id    text NOT NULL,
    depth        smallint NOT NULL CHECK (depth BETWEEN 1 AND 3),
    ancestor_id  text NOT NULL,
    PRIMARY KEY (tenant_id, member_id, depth),
    CONSTRAINT referral_paths_member_fk FOREIGN KEY (tenant_id, member_id) REFERENCES referral.members (tenant_id, member_id),
    CONSTRAINT referral_paths_ancestor_fk FOREIGN KEY (tenant_id, ancestor_id) REFERENCES referral.members (tenant_id, member_id),
    CONSTRAINT referral_paths_not_self CHECK (ancestor_id <> member_id)
);
CREATE INDEX referral_paths_team ON referral.referral_paths (tenant_id, ancestor_id, depth, member_id);

-- Every binding ever made (the members row holds the current one).
CREATE TABLE referral.bindings (
    tenant_id            text NOT NULL,
    binding_id           bigint GENERATED ALWAYS AS IDENTITY,
    invitee_id           text NOT NULL,
    inviter_id           text NOT NULL,
    previous_inviter_id  text,
    occurred_at          timestamptz NOT NULL,
    mode                 text NOT NULL,
    device_id            text,
    ip                   text,
    flagged              boolean NOT NULL DEFAULT false,
    flag_reason          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, binding_id),
    FOREIGN KEY (tenant_id, invitee_id) REFERENCES referral.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, inviter_id) REFERENCES referral.members (tenant_id, member_id)
);
CREATE INDEX bindings_by_inviter ON referral.bindings (tenant_id, inviter_id, occurred_at);

CREATE TABLE referral.orders (
    tenant_id        text NOT NULL REFERENCES referral.tenants (tenant_id),
    order_id         text NOT NULL CHECK (length(order_id) BETWEEN 1 AND 64),
    buyer_id         text NOT NULL,
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    paid_at          timestamptz NOT NULL,
    received_at      timestamptz,
    total_amount     bigint NOT NULL CHECK (total_amount >= 0),
    refunded_amount  bigint NOT NULL DEFAULT 0 CHECK (refunded_amount BETWEEN 0 AND total_amount),
    -- the chain at payment: [{level, member_id, level_code, rate_bps, paid, skipped_reason}]
    chain            jsonb NOT NULL,
    rule_version     integer NOT NULL,
    accrue_entry_id  bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, buyer_id) REFERENCES referral.members (tenant_id, member_id)
);
CREATE INDEX orders_by_paid_at ON referral.orders (tenant_id, paid_at);
CREATE INDEX orders_by_buyer ON referral.orders (tenant_id, buyer_id, paid_at);

CREATE TABLE referral.order_items (
    tenant_id        text NOT NULL,
    order_id         text NOT NULL,
    item_id          text NOT NULL CHECK (length(item_id) BETWEEN 1 AND 64),
    category         text,
    amount           bigint NOT NULL CHECK (amount >= 0),
    quantity         integer NOT NULL CHECK (quantity >= 1),
    refunded_amount  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, order_id, item_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES referral.orders (tenant_id, order_id),
    CONSTRAINT order_items_refund_within_paid CHECK (refunded_amount BETWEEN 0 AND amount)
);

-- One row per (item, level) that pays: the unit of freezing, release and reversal (§4.3 item 9).
-- state: frozen (in commission_frozen) -> released (in available / withdrawing / paid out / repaid
-- debt); reversed once nothing is left. reversed_amount is what refunds took back; written_off is
-- what the `cap` clawback policy could not take back.
CREATE TABLE referral.commission_items (
    tenant_id         text NOT NULL,
    order_id          text NOT NULL,
    item_id           text NOT NULL,
    level             smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    beneficiary_id    text NOT NULL,
    rate_bps          integer NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    base_amount       bigint NOT NULL CHECK (base_amount >= 0),
    amount            bigint NOT NULL CHECK (amount > 0),
    reversed_amount   bigint NOT NULL DEFAULT 0,
    written_off       bigint NOT NULL DEFAULT 0 CHECK (written_off >= 0),
    state             text NOT NULL DEFAULT 'frozen' CHECK (state IN ('frozen', 'released', 'reversed')),
    release_at        timestamptz,
    released_at       timestamptz,
    release_entry_id  bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id, item_id, level),
    FOREIGN KEY (tenant_id, order_id, item_id) REFERENCES referral.order_items (tenant_id, order_id, item_id),
    FOREIGN KEY (tenant_id, beneficiary_id) REFERENCES referral.members (tenant_id, member_id),
    CONSTRAINT commission_items_reversal_within_amount CHECK (reversed_amount BETWEEN 0 AND amount),
    CONSTRAINT commission_items_reversed_means_nothing_left CHECK ((state = 'reversed') = (reversed_amount = amount)),
    CONSTRAINT commission_items_released_has_entry CHECK ((state = 'frozen') OR (release_entry_id IS NOT NULL) OR (released_at IS NULL))
);
CREATE INDEX commission_items_due ON referral.commission_items (release_at, tenant_id) WHERE state = 'frozen';
CREATE INDEX commission_items_by_beneficiary ON referral.commission_items (tenant_id, beneficiary_id, created_at);
CREATE INDEX commission_items_by_created ON referral.commission_items (tenant_id, created_at);

CREATE TABLE referral.refunds (
    tenant_id   text NOT NULL,
    refund_id   text NOT NULL CHECK (length(refund_id) BETWEEN 1 AND 64),
    order_id    text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    items       jsonb NOT NULL,
    entry_id    bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, refund_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES referral.orders (tenant_id, order_id)
);

CREATE TABLE referral.withdrawals (
    tenant_id      text NOT NULL,
    withdrawal_id  text NOT NULL CHECK (length(withdrawal_id) BETWEEN 1 AND 64),
    member_id      text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    fee            bigint NOT NULL CHECK (fee >= 0),
    currency       text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('wechat', 'alipay', 'bank', 'wallet')),
    account_ref    text NOT NULL,
    status         text NOT NULL CHECK (status IN ('requested', 'approved', 'completed', 'rejected', 'failed')),
    reason         text,
    payout_ref     text,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    approved_at    timestamptz,
    resolved_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, withdrawal_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES referral.members (tenant_id, member_id),
    CONSTRAINT withdrawals_fee_within_amount CHECK (fee <= amount)
);
CREATE INDEX withdrawals_by_member ON referral.withdrawals (tenant_id, member_id, requested_at);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS referral.withdrawals;
DROP TABLE IF EXISTS referral.refunds;
DROP TABLE IF EXISTS referral.commission_items;
DROP TABLE IF EXISTS referral.order_items;
DROP TABLE IF EXISTS referral.orders;
DROP TABLE IF EXISTS referral.bindings;
DROP TABLE IF EXISTS referral.referral_paths;
DROP TABLE IF EXISTS referral.members;
DROP TABLE IF EXISTS referral.distributor_levels;
DROP TABLE IF EXISTS referral.programs;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
