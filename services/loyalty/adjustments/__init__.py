"""Admin point adjustments (§5.9): credit or debit a member's available points with a reason."""
