"""The referral service's app factory: the shared kernel plus this service's routes."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from services.referral.members.controllers import (
    BindingController,
    DistributorController,
    LeaderboardController,
    LoyaltyEventController,
    MemberController,
)
from services.referral.orders.checks import COMMISSION_CHECKS
from services.referral.orders.controllers import OrderController
from services.referral.orders.jobs import RELEASE_COMMISSION
from services.referral.program.controllers import ProgramController
from services.referral.reports import COMMISSION_LIABILITY
from services.referral.withdrawals.checks import WITHDRAWAL_CHECKS
from services.referral.withdrawals.controllers import WithdrawalController
from shared.app import create_service_app
from shared.settings import Settings, load_settings

__all__ = ["MIGRATIONS", "SERVICE", "create_app", "create_app_from_env"]

SERVICE = "referral"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings) -> Litestar:
    return create_service_app(
        settings,
        title="Referral service",
        description="Invite attribution, multi-level commission on a double-entry ledger, withdrawals and team statistics.",
        route_handlers=[
            ProgramController,
            WithdrawalController,
            OrderController,
            MemberController,
            BindingController,
            DistributorController,
            LeaderboardController,
            LoyaltyEventController,
        ],
        jobs=[RELEASE_COMMISSION],
        verify_checks=[*COMMISSION_CHECKS, *WITHDRAWAL_CHECKS],
        liability=COMMISSION_LIABILITY,
    )


def create_app_from_env() -> Litestar:
    """For an ASGI server's --factory flag: DATABASE_URL must be set."""
    return create_app(load_settings(SERVICE, os.environ["DATABASE_URL"]))
