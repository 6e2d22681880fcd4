"""The loyalty service's app factory: the shared kernel plus this service's routes."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from services.loyalty.checks import LOT_CHECKS
from services.loyalty.members.controllers import MemberController
from services.loyalty.program.controllers import ProgramController
from services.loyalty.tiers.controllers import TierController
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
        route_handlers=[ProgramController, TierController, MemberController],
        verify_checks=[*LOT_CHECKS],
    )


def create_app_from_env() -> Litestar:
    """For an ASGI server's --factory flag: DATABASE_URL must be set."""
    return create_app(load_settings(SERVICE, os.environ["DATABASE_URL"]))
