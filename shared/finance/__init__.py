"""Finance and reconciliation (DESIGN §7): exports, trial balance, statements, nightly verification."""
