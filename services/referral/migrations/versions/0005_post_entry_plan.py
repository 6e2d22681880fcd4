"""Kernel revision 2 in the referral schema: the ledger's post_entry keeps one generic plan.

Revision ID: 0005
Revises: 0004
"""

from shared.ledger.schema import post_entry_generic_plan_downgrade_sql, post_entry_generic_plan_upgrade_sql
from shared.migrations import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(post_entry_generic_plan_upgrade_sql("referral"))


def downgrade() -> None:
    execute_script(post_entry_generic_plan_downgrade_sql("referral"))
