"""The events kernel in the loyalty schema: outbox, webhook subscriptions and deliveries, job runs.

Revision ID: 0002
Revises: 0001
"""

from shared.events.schema import events_downgrade_sql, events_upgrade_sql
from shared.migrations import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(events_upgrade_sql("loyalty"))


def downgrade() -> None:
    execute_script(events_downgrade_sql("loyalty"))
