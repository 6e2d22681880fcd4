"""The loyalty domain (DESIGN §5): programme, tiers, members, plans and subscriptions, lots and their
allocations, qualifying points, orders and refunds, earning rules, tasks and streaks, rewards and
redemptions, holds, adjustments, expiry reminders.

The whole of §5 is laid out here so later work adds code, not schema. Columns marked `-- later:` are
the ones the features still to be built may refine (a new migration then, never an edit of this one).

Revision ID: 0003
Revises: 0002
"""

from shared.migrations import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- One row per tenant; the validated programme (services/loyalty/program/schemas.py) as JSON.
-- `version` is the ETag of GET /v1/program and the rule version snapshotted on orders.
CREATE TABLE loyalty.programs (
    tenant_id   text PRIMARY KEY REFERENCES loyalty.tenants (tenant_id),
    config      jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- §5.2. The lowest rank is the entry tier (threshold 0); thresholds rise strictly with rank (checked by
-- the service over the whole set, which a row CHECK cannot see). Tiers are never deleted.
CREATE TABLE loyalty.tiers (
    tenant_id       text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rank            integer NOT NULL CHECK (rank >= 0),
    threshold       bigint NOT NULL CHECK (threshold >= 0),
    multiplier_bps  integer NOT NULL DEFAULT 10000 CHECK (multiplier_bps BETWEEN 0 AND 1000000),
    benefits        jsonb NOT NULL DEFAULT '{}'::jsonb,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    CONSTRAINT tiers_rank_unique UNIQUE (tenant_id, rank)
);

-- §5.9. earned_tier NULL = the entry tier (the lowest rank), whichever code it has.
CREATE TABLE loyalty.members (
    tenant_id         text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    member_id         text NOT NULL CHECK (member_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    attributes        jsonb NOT NULL DEFAULT '{}'::jsonb,
    joined_at         timestamptz NOT NULL,
    earned_tier       text,
    tier_since        timestamptz,
    -- set by the tier evaluation job when the member no longer qualifies: downgrade after the grace
    downgrade_due_at  timestamptz,
    tier_evaluated_at timestamptz,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id),
    CONSTRAINT members_earned_tier_fk FOREIGN KEY (tenant_id, earned_tier) REFERENCES loyalty.tiers (tenant_id, code)
);
CREATE INDEX members_downgrade_due ON loyalty.members (downgrade_due_at, tenant_id) WHERE downgrade_due_at IS NOT NULL;

-- Every tier change (earned or plan-granted), as emitted in `member.tier_changed`.
CREATE TABLE loyalty.tier_history (
    tenant_id    text NOT NULL,
    history_id   bigint GENERATED ALWAYS AS IDENTITY,
    member_id    text NOT NULL,
    from_tier    text,
    to_tier      text,
    source       text NOT NULL CHECK (source IN ('earned', 'plan')),
    reason       text NOT NULL CHECK (reason IN ('upgrade', 'downgrade', 'plan_started', 'plan_ended', 'refund', 'admin')),
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, history_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id)
);
CREATE INDEX tier_history_by_member ON loyalty.tier_history (tenant_id, member_id, history_id);

-- §5.3 paid plans.
CREATE TABLE loyalty.plans (
    tenant_id            text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    code                 text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    duration             text NOT NULL CHECK (duration IN ('P1M', 'P3M', 'P1Y', 'lifetime')),
    price                bigint NOT NULL CHECK (price >= 0),
    tier_code            text,
    bonus_points         bigint NOT NULL DEFAULT 0 CHECK (bonus_points >= 0),
    grants_distribution  boolean NOT NULL DEFAULT false,
    trial                boolean NOT NULL DEFAULT false,
    active               boolean NOT NULL DEFAULT true,  -- later: retire a plan for new subscriptions
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    FOREIGN KEY (tenant_id, tier_code) REFERENCES loyalty.tiers (tenant_id, code)
);

-- One row per purchase (start or extension). ends_at NULL = lifetime. An extension starts at
-- max(paid_at, the member's current end) (never from a lapsed end).
CREATE TABLE loyalty.subscriptions (
    tenant_id        text NOT NULL,
    subscription_id  text NOT NULL CHECK (length(subscription_id) BETWEEN 1 AND 64),
    member_id        text NOT NULL,
    plan_code        text NOT NULL,
    -- the plan as bought (a later plan change does not rewrite history)
    tier_code        text,
    duration         text NOT NULL CHECK (duration IN ('P1M', 'P3M', 'P1Y', 'lifetime')),
    trial            boolean NOT NULL DEFAULT false,
    bonus_points     bigint NOT NULL DEFAULT 0 CHECK (bonus_points >= 0),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled', 'expired')),
    paid_amount      bigint NOT NULL CHECK (paid_amount >= 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    paid_at          timestamptz NOT NULL,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz,
    cancelled_at     timestamptz,
    refunded         boolean NOT NULL DEFAULT false,
    bonus_entry_id   bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subscription_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, plan_code) REFERENCES loyalty.plans (tenant_id, code),
    CONSTRAINT subscriptions_ends_after_start CHECK (ends_at IS NULL OR ends_at > starts_at),
    CONSTRAINT subscriptions_cancelled_has_time CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CONSTRAINT subscriptions_refund_means_cancelled CHECK (NOT refunded OR status = 'cancelled')
);
CREATE INDEX subscriptions_by_member ON loyalty.subscriptions (tenant_id, member_id, ends_at);
CREATE INDEX subscriptions_lapsing ON loyalty.subscriptions (ends_at, tenant_id) WHERE status = 'active' AND ends_at IS NOT NULL;
-- A trial is allowed once per member.
CREATE UNIQUE INDEX subscriptions_one_trial ON loyalty.subscriptions (tenant_id, member_id) WHERE trial;

-- §5.6. A lot is a credit to available points with its expiry (NULL = never). `remaining` is what is
-- left after allocations; Σ remaining over a member's lots = their available balance (§4.3 item 5).
CREATE TABLE loyalty.lots (
    tenant_id        text NOT NULL,
    lot_id           bigint GENERATED ALWAYS AS IDENTITY,
    member_id        text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    remaining        bigint NOT NULL,
    earned_at        timestamptz NOT NULL,
    expires_at       timestamptz,
    -- the entry that credited these points to member:{id}:points
    source_entry_id  bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lot_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, source_entry_id) REFERENCES loyalty.entries (tenant_id, entry_id),
    CONSTRAINT lots_remaining_within_amount CHECK (remaining BETWEEN 0 AND amount),
    CONSTRAINT lots_expire_after_earning CHECK (expires_at IS NULL OR expires_at > earned_at)
);
-- FEFO: a member's live lots, first-expiring first, never-expiring last.
CREATE INDEX lots_fefo ON loyalty.lots (tenant_id, member_id, expires_at ASC NULLS LAST, lot_id) WHERE remaining > 0;
-- The expiry sweep and the reminder job: live lots by expiry time, across tenants.
CREATE INDEX lots_expiring ON loyalty.lots (expires_at, tenant_id, lot_id) WHERE remaining > 0 AND expires_at IS NOT NULL;

-- Which lot gave how much to which operation, so a void or a cancellation gives back exactly those
-- points to those lots (with their original expiry). Expiry itself is an allocation ('expiry').
-- `restored` counts what was given back (all of it on a void; the unused rest on a partial capture).
CREATE TABLE loyalty.lot_allocations (
    tenant_id      text NOT NULL,
    allocation_id  bigint GENERATED ALWAYS AS IDENTITY,
    lot_id         bigint NOT NULL,
    member_id      text NOT NULL,
    purpose        text NOT NULL CHECK (purpose IN ('redemption', 'hold', 'expiry', 'clawback', 'adjustment')),
    ref            text NOT NULL CHECK (length(ref) BETWEEN 1 AND 200),
    points         bigint NOT NULL CHECK (points > 0),
    restored       bigint NOT NULL DEFAULT 0,
    restored_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, allocation_id),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES loyalty.lots (tenant_id, lot_id),
    CONSTRAINT lot_allocations_once_per_lot UNIQUE (tenant_id, purpose, ref, lot_id),
    CONSTRAINT lot_allocations_restored_within CHECK (restored BETWEEN 0 AND points),
    CONSTRAINT lot_allocations_restored_has_time CHECK ((restored = 0) = (restored_at IS NULL))
);
CREATE INDEX lot_allocations_by_lot ON loyalty.lot_allocations (tenant_id, lot_id);

-- §5.2 qualifying points: what a member earned (±: reversals are negative), by when it counts.
CREATE TABLE loyalty.qualifying_points (
    tenant_id    text NOT NULL,
    event_id     bigint GENERATED ALWAYS AS IDENTITY,
    member_id    text NOT NULL,
    points       bigint NOT NULL CHECK (points <> 0),
    occurred_at  timestamptz NOT NULL,
    source       text NOT NULL CHECK (source IN ('purchase', 'refund', 'task', 'adjustment', 'plan')),
    source_ref   text NOT NULL,
    entry_id     bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id)
);
CREATE INDEX qualifying_points_window ON loyalty.qualifying_points (tenant_id, member_id, occurred_at) INCLUDE (points);

-- §5.4 earning rules. condition: {"categories": [...], "skus": [...]} (empty = every item).
CREATE TABLE loyalty.earning_rules (
    tenant_id              text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    code                   text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name                   text NOT NULL,
    condition              jsonb NOT NULL DEFAULT '{}'::jsonb,
    kind                   text NOT NULL CHECK (kind IN ('multiplier', 'fixed_per_unit')),
    multiplier_bps         integer CHECK (multiplier_bps BETWEEN 0 AND 1000000),
    points_per_unit        bigint CHECK (points_per_unit >= 0),
    cap_per_order          bigint CHECK (cap_per_order >= 0),
    cap_per_member_day     bigint CHECK (cap_per_member_day >= 0),
    valid_from             timestamptz,
    valid_until            timestamptz,
    active                 boolean NOT NULL DEFAULT true,
    version                integer NOT NULL DEFAULT 1,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    CONSTRAINT earning_rules_kind_fields CHECK (
        (kind = 'multiplier' AND multiplier_bps IS NOT NULL) OR (kind = 'fixed_per_unit' AND points_per_unit IS NOT NULL)),
    CONSTRAINT earning_rules_window CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);

-- §5.4 orders: points earned pending until pending_until, then released to available (a lot).
CREATE TABLE loyalty.orders (
    tenant_id         text NOT NULL,
    order_id          text NOT NULL CHECK (length(order_id) BETWEEN 1 AND 64),
    member_id         text NOT NULL,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    paid_at           timestamptz NOT NULL,
    total_amount      bigint NOT NULL CHECK (total_amount >= 0),
    refunded_amount   bigint NOT NULL DEFAULT 0,
    points            bigint NOT NULL CHECK (points >= 0),
    reversed_points   bigint NOT NULL DEFAULT 0,
    -- the rule snapshot: programme version, tier and its multiplier at payment
    rule_version      integer NOT NULL,
    tier_code         text,
    multiplier_bps    integer NOT NULL,
    pending_until     timestamptz NOT NULL,
    earn_entry_id     bigint,
    released_at       timestamptz,
    release_entry_id  bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    CONSTRAINT orders_refund_within_paid CHECK (refunded_amount BETWEEN 0 AND total_amount),
    CONSTRAINT orders_reversal_within_points CHECK (reversed_points BETWEEN 0 AND points),
    CONSTRAINT orders_released_has_entry CHECK ((released_at IS NULL) = (release_entry_id IS NULL))
);
CREATE INDEX orders_pending_due ON loyalty.orders (pending_until, tenant_id) WHERE released_at IS NULL;
CREATE INDEX orders_by_member ON loyalty.orders (tenant_id, member_id, paid_at);

-- Points are allocated to items so an item refund reverses exactly its share.
CREATE TABLE loyalty.order_items (
    tenant_id        text NOT NULL,
    order_id         text NOT NULL,
    item_id          text NOT NULL CHECK (length(item_id) BETWEEN 1 AND 64),
    sku              text,
    category         text,
    amount           bigint NOT NULL CHECK (amount >= 0),
    quantity         integer NOT NULL CHECK (quantity >= 1),
    points           bigint NOT NULL CHECK (points >= 0),
    refunded_amount  bigint NOT NULL DEFAULT 0,
    reversed_points  bigint NOT NULL DEFAULT 0,
    rule_codes       text[] NOT NULL DEFAULT '{}',  -- later: per-rule breakdown if refunds need it
    PRIMARY KEY (tenant_id, order_id, item_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES loyalty.orders (tenant_id, order_id),
    CONSTRAINT order_items_refund_within_paid CHECK (refunded_amount BETWEEN 0 AND amount),
    CONSTRAINT order_items_reversal_within_points CHECK (reversed_points BETWEEN 0 AND points)
);

CREATE TABLE loyalty.refunds (
    tenant_id        text NOT NULL,
    refund_id        text NOT NULL CHECK (length(refund_id) BETWEEN 1 AND 64),
    order_id         text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    points_reversed  bigint NOT NULL CHECK (points_reversed >= 0),
    -- what the negative-balance policy did: booked as debt, or written off under `cap`
    debt_points      bigint NOT NULL DEFAULT 0 CHECK (debt_points >= 0),
    written_off      bigint NOT NULL DEFAULT 0 CHECK (written_off >= 0),
    items            jsonb NOT NULL,
    entry_id         bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, refund_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES loyalty.orders (tenant_id, order_id)
);
CREATE INDEX refunds_by_order ON loyalty.refunds (tenant_id, order_id);

-- §5.5 tasks. streak: {"bonuses": [{"day": 3, "points": 10}, ...], "reset": "gap"|"weekly"|"monthly"}.
-- multipliers: {"tiers": {code: bps}, "plans": {code: bps}}.
CREATE TABLE loyalty.tasks (
    tenant_id          text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    code               text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name               text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('checkin', 'post', 'share', 'profile', 'custom')),
    points             bigint NOT NULL CHECK (points >= 0),
    period             text NOT NULL CHECK (period IN ('day', 'week', 'month', 'lifetime')),
    limit_per_period   integer NOT NULL DEFAULT 1 CHECK (limit_per_period >= 1),
    cooldown_seconds   integer NOT NULL DEFAULT 0 CHECK (cooldown_seconds >= 0),
    streak             jsonb,
    multipliers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    active             boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

-- period_key: the tenant-local period ('2026-11-23', '2026-W48', '2026-11', 'lifetime'); sequence
-- 1..limit_per_period. The unique key makes a double award impossible even under concurrency.
CREATE TABLE loyalty.task_completions (
    tenant_id      text NOT NULL,
    completion_id  text NOT NULL CHECK (length(completion_id) BETWEEN 1 AND 64),
    member_id      text NOT NULL,
    task_code      text NOT NULL,
    period_key     text NOT NULL,
    sequence       integer NOT NULL CHECK (sequence >= 1),
    occurred_at    timestamptz NOT NULL,
    points         bigint NOT NULL CHECK (points >= 0),
    streak_day     integer CHECK (streak_day >= 1),
    streak_bonus   bigint NOT NULL DEFAULT 0 CHECK (streak_bonus >= 0),
    entry_id       bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, completion_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, task_code) REFERENCES loyalty.tasks (tenant_id, code),
    CONSTRAINT task_completions_once_per_slot UNIQUE (tenant_id, member_id, task_code, period_key, sequence)
);
CREATE INDEX task_completions_recent ON loyalty.task_completions (tenant_id, member_id, task_code, occurred_at);

CREATE TABLE loyalty.streaks (
    tenant_id     text NOT NULL,
    member_id     text NOT NULL,
    task_code     text NOT NULL,
    length        integer NOT NULL DEFAULT 0 CHECK (length >= 0),
    longest       integer NOT NULL DEFAULT 0 CHECK (longest >= length),
    last_day      date,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, task_code),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, task_code) REFERENCES loyalty.tasks (tenant_id, code)
);

-- §5.7 rewards. stock NULL = unlimited; the CHECK makes overselling impossible.
CREATE TABLE loyalty.rewards (
    tenant_id          text NOT NULL REFERENCES loyalty.tenants (tenant_id),
    code               text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name               text NOT NULL,
    cost_points        bigint NOT NULL CHECK (cost_points > 0),
    stock              bigint CHECK (stock >= 0),
    per_member_limit   integer CHECK (per_member_limit >= 1),
    valid_from         timestamptz,
    valid_until        timestamptz,
    min_tier           text,
    kind               text NOT NULL CHECK (kind IN ('coupon', 'gift', 'custom')),
    payload            jsonb NOT NULL DEFAULT '{}'::jsonb,
    active             boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    FOREIGN KEY (tenant_id, min_tier) REFERENCES loyalty.tiers (tenant_id, code),
    CONSTRAINT rewards_window CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);

CREATE TABLE loyalty.redemptions (
    tenant_id         text NOT NULL,
    redemption_id     text NOT NULL CHECK (length(redemption_id) BETWEEN 1 AND 64),
    member_id         text NOT NULL,
    reward_code       text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity >= 1),
    points            bigint NOT NULL CHECK (points > 0),
    status            text NOT NULL DEFAULT 'completed' CHECK (status IN ('completed', 'cancelled')),
    entry_id          bigint,
    cancel_entry_id   bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    cancelled_at      timestamptz,
    PRIMARY KEY (tenant_id, redemption_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    FOREIGN KEY (tenant_id, reward_code) REFERENCES loyalty.rewards (tenant_id, code),
    CONSTRAINT redemptions_cancelled_has_time CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE INDEX redemptions_per_member ON loyalty.redemptions (tenant_id, member_id, reward_code) WHERE status = 'completed';

-- §5.8 holds: resolve at most once (status leaves 'held' once).
CREATE TABLE loyalty.holds (
    tenant_id          text NOT NULL,
    hold_id            text NOT NULL CHECK (length(hold_id) BETWEEN 1 AND 64),
    member_id          text NOT NULL,
    points             bigint NOT NULL CHECK (points > 0),
    order_ref          text,
    status             text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'captured', 'voided', 'expired')),
    expires_at         timestamptz NOT NULL,
    captured_points    bigint NOT NULL DEFAULT 0,
    hold_entry_id      bigint,
    resolve_entry_id   bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    PRIMARY KEY (tenant_id, hold_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id),
    CONSTRAINT holds_capture_within_held CHECK (captured_points BETWEEN 0 AND points),
    CONSTRAINT holds_captured_only_when_captured CHECK (status = 'captured' OR captured_points = 0),
    CONSTRAINT holds_resolved_has_time CHECK ((status = 'held') = (resolved_at IS NULL))
);
CREATE INDEX holds_expiring ON loyalty.holds (expires_at, tenant_id) WHERE status = 'held';

-- §5.9 adjustments (admin): reason required, operator recorded; `qualifying` counts toward tiers.
CREATE TABLE loyalty.adjustments (
    tenant_id      text NOT NULL,
    adjustment_id  text NOT NULL CHECK (length(adjustment_id) BETWEEN 1 AND 64),
    member_id      text NOT NULL,
    points         bigint NOT NULL CHECK (points <> 0),
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    operator       text NOT NULL CHECK (length(operator) BETWEEN 1 AND 200),
    qualifying     boolean NOT NULL DEFAULT false,
    entry_id       bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, adjustment_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES loyalty.members (tenant_id, member_id)
);

-- §5.6 `points.expiring` at most once per lot.
CREATE TABLE loyalty.expiry_reminders (
    tenant_id    text NOT NULL,
    lot_id       bigint NOT NULL,
    member_id    text NOT NULL,
    expires_at   timestamptz NOT NULL,
    points       bigint NOT NULL CHECK (points > 0),
    reminded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lot_id),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES loyalty.lots (tenant_id, lot_id)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS loyalty.expiry_reminders;
DROP TABLE IF EXISTS loyalty.adjustments;
DROP TABLE IF EXISTS loyalty.holds;
DROP TABLE IF EXISTS loyalty.redemptions;
DROP TABLE IF EXISTS loyalty.rewards;
DROP TABLE IF EXISTS loyalty.streaks;
DROP TABLE IF EXISTS loyalty.task_completions;
DROP TABLE IF EXISTS loyalty.tasks;
DROP TABLE IF EXISTS loyalty.refunds;
DROP TABLE IF EXISTS loyalty.order_items;
DROP TABLE IF EXISTS loyalty.orders;
DROP TABLE IF EXISTS loyalty.earning_rules;
DROP TABLE IF EXISTS loyalty.qualifying_points;
DROP TABLE IF EXISTS loyalty.lot_allocations;
DROP TABLE IF EXISTS loyalty.lots;
DROP TABLE IF EXISTS loyalty.subscriptions;
DROP TABLE IF EXISTS loyalty.plans;
DROP TABLE IF EXISTS loyalty.tier_history;
DROP TABLE IF EXISTS loyalty.members;
DROP TABLE IF EXISTS loyalty.tiers;
DROP TABLE IF EXISTS loyalty.programs;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
