"""The `ledger` fixture lives in tests/shared/conftest.py; its helpers are re-exported here."""

from tests.shared.conftest import PROGRAM, LedgerTenant

__all__ = ["PROGRAM", "LedgerTenant"]
