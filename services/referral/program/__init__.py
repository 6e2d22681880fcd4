"""Programme configuration (§6.1)."""
