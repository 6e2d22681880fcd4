"""The finance kernel in the loyalty schema: ledger verification results, entries by creation time.

Revision ID: 0005
Revises: 0004
"""

from shared.finance.schema import finance_downgrade_sql, finance_upgrade_sql
from shared.migrations import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(finance_upgrade_sql("loyalty"))


def downgrade() -> None:
    execute_script(finance_downgrade_sql("loyalty"))
