"""Programme configuration (§5.1)."""
