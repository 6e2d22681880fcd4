"""Orders keep the programme's freeze days of their payment, so a receipt counts with the terms the
order was paid under (§6.4: the snapshot on the order), not with whatever the programme says later.

Revision ID: 0006
Revises: 0005
"""

from shared.migrations import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# NULL for orders paid before this revision: their receipt counts with the programme's current days.
_UPGRADE = """
ALTER TABLE referral.orders ADD COLUMN freeze_days smallint CHECK (freeze_days BETWEEN 0 AND 3650);
"""

_DOWNGRADE = """
ALTER TABLE referral.orders DROP COLUMN freeze_days;
"""


def upgrade() -> None:
    execute_script(_UPGRADE)


def downgrade() -> None:
    execute_script(_DOWNGRADE)
