"""Members and their views (§5.9)."""
