"""Paid plans and subscriptions (§5.3) and the plan-expiry job."""
