"""Earning rules (§5.4): bonus points on purchases by category or sku."""
