"""The platform kernel both services stand on: settings, database, ledger, auth, errors, idempotency."""
