"""The platform kernel in the referral schema: tenants, API keys, idempotency, the ledger.

Revision ID: 0001
Revises:
"""

from shared.ledger.schema import kernel_downgrade_sql, kernel_upgrade_sql
from shared.migrations import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(kernel_upgrade_sql("referral"))


def downgrade() -> None:
    execute_script(kernel_downgrade_sql("referral"))
