"""The referral service's app factory: the shared kernel plus this service's routes."""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from services.referral.program.controllers import ProgramController
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
        route_handlers=[ProgramController],
    )


def create_app_from_env() -> Litestar:
    """For an ASGI server's --factory flag: DATABASE_URL must be set."""
    return create_app(load_settings(SERVICE, os.environ["DATABASE_URL"]))
