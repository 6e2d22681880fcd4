"""Kernel revision 2 in the loyalty schema: the ledger's post_entry keeps one generic plan.

Revision ID: 0006
Revises: 0005
"""

from shared.ledger.schema import post_entry_generic_plan_downgrade_sql, post_entry_generic_plan_upgrade_sql
from shared.migrations import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(post_entry_generic_plan_upgrade_sql("loyalty"))


def downgrade() -> None:
    execute_script(post_entry_generic_plan_downgrade_sql("loyalty"))
