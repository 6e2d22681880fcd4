"""The loyalty service's app factory: the shared kernel plus this service's routes."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from services.loyalty.adjustments.controllers import AdjustmentController
from services.loyalty.checks import LOT_CHECKS
from services.loyalty.earning_rules.controllers import EarningRuleController
from services.loyalty.expiry.jobs import EXPIRE_POINTS, SEND_EXPIRY_REMINDERS
from services.loyalty.holds.checks import HOLD_CHECKS
from services.loyalty.holds.controllers import HoldController
from services.loyalty.holds.jobs import EXPIRE_HOLDS
from services.loyalty.members.controllers import MemberController
from services.loyalty.orders.controllers import OrderController
from services.loyalty.orders.jobs import RELEASE_PENDING_POINTS
from services.loyalty.plans.controllers import PlanController, SubscriptionController
from services.loyalty.plans.jobs import EXPIRE_PLANS
from services.loyalty.program.controllers import ProgramController
from services.loyalty.reports import POINTS_LIABILITY
from services.loyalty.rewards.controllers import RedemptionController, RewardController
from services.loyalty.tasks.controllers import TaskController
from services.loyalty.tiers.controllers import TierController, TierHistoryController
from services.loyalty.tiers.jobs import EVALUATE_TIERS
from shared.app import create_service_app
from shared.settings import Settings, load_settings

__all__ = ["MIGRATIONS", "SERVICE", "create_app", "create_app_from_env"]

SERVICE = "loyalty"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings) -> Litestar:
    return create_service_app(
        settings,
        title="Loyalty service",
        description="Member tiers, paid plans, points from purchases and tasks, rewards and holds, on a double-entry ledger.",
        route_handlers=[
            ProgramController,
            TierController,
            MemberController,
            AdjustmentController,
            RewardController,
            RedemptionController,
            HoldController,
            EarningRuleController,
            OrderController,
            TaskController,
            PlanController,
            SubscriptionController,
            TierHistoryController,
        ],
        verify_checks=[*LOT_CHECKS, *HOLD_CHECKS],
        liability=POINTS_LIABILITY,
        jobs=[RELEASE_PENDING_POINTS, EXPIRE_POINTS, SEND_EXPIRY_REMINDERS, EXPIRE_HOLDS, EXPIRE_PLANS, EVALUATE_TIERS],
    )


def create_app_from_env() -> Litestar:
    """For an ASGI server's --factory flag: DATABASE_URL must be set."""
    return create_app(load_settings(SERVICE, os.environ["DATABASE_URL"]))
