"""Earning from purchases (DESIGN §5.4, §5.6): what orders need beyond 0003.

- `orders.lot_expires_at`: the expiry of the lot the order's points become, computed at payment by
  the policy in force then (§5.6), so a policy change between payment and release changes nothing.
- A release moves points with an entry, except when nothing is left to move (refunds reversed all of
  it while pending, or the order earned nothing): such an order is released without an entry. The
  0003 CHECK `orders_released_has_entry` cannot say that, so it is replaced.
- `order_rule_points`: what each earning rule added to each order, by the member's tenant-local day,
  so `cap_per_member_day` is one indexed sum.

Revision ID: 0004
Revises: 0003
"""

from shared.migrations import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE loyalty.orders ADD COLUMN lot_expires_at timestamptz;

ALTER TABLE loyalty.orders DROP CONSTRAINT orders_released_has_entry;
-- An entry only on a released order; a released order without one had nothing left to release.
ALTER TABLE loyalty.orders ADD CONSTRAINT orders_release_entry_when_released CHECK (
    (release_entry_id IS NULL OR released_at IS NOT NULL)
    AND (released_at IS NULL OR release_entry_id IS NOT NULL OR reversed_points = points));

-- Points an earning rule added to an order (after its caps), on the member's tenant-local day of payment.
CREATE TABLE loyalty.order_rule_points (
    tenant_id   text NOT NULL,
    order_id    text NOT NULL,
    rule_code   text NOT NULL,
    member_id   text NOT NULL,
    local_day   date NOT NULL,
    points      bigint NOT NULL,
    PRIMARY KEY (tenant_id, order_id, rule_code),
    FOREIGN KEY (tenant_id, order_id) REFERENCES loyalty.orders (tenant_id, order_id)
);
CREATE INDEX order_rule_points_per_day ON loyalty.order_rule_points (tenant_id, member_id, rule_code, local_day)
    INCLUDE (points);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS loyalty.order_rule_points;
ALTER TABLE loyalty.orders DROP CONSTRAINT IF EXISTS orders_release_entry_when_released;
ALTER TABLE loyalty.orders ADD CONSTRAINT orders_released_has_entry
    CHECK ((released_at IS NULL) = (release_entry_id IS NULL)) NOT VALID;
ALTER TABLE loyalty.orders DROP COLUMN IF EXISTS lot_expires_at;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
