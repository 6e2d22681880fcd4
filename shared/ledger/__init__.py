"""The double-entry ledger (DESIGN §4): schema, Python API and verification."""

from shared.ledger.api import (
    MAX_AMOUNT,
    Account,
    Balance,
    Entry,
    HistoryLine,
    Leg,
    PostedEntry,
    balances,
    get_entry,
    history,
    legs_hash,
    open_account,
    post_entry,
    reverse_entry,
)
from shared.ledger.verify import KERNEL_CHECKS, Check, VerifyReport, Violation, verify

__all__ = [
    "KERNEL_CHECKS",
    "MAX_AMOUNT",
    "Account",
    "Balance",
    "Check",
    "Entry",
    "HistoryLine",
    "Leg",
    "PostedEntry",
    "VerifyReport",
    "Violation",
    "balances",
    "get_entry",
    "history",
    "legs_hash",
    "open_account",
    "post_entry",
    "reverse_entry",
    "verify",
]
