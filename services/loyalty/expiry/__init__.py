"""Lot expiry (§5.6, §8): the sweep that expires due lots and the `points.expiring` reminders."""
