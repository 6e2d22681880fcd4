"""Rewards and redemptions (§5.7)."""
