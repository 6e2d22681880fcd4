"""The finance kernel in the referral schema: ledger verification results, entries by creation time.

Revision ID: 0004
Revises: 0003
"""

from shared.finance.schema import finance_downgrade_sql, finance_upgrade_sql
from shared.migrations import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(finance_upgrade_sql("referral"))


def downgrade() -> None:
    execute_script(finance_downgrade_sql("referral"))
