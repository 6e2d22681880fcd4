"""Tasks, check-ins and streaks (§5.5)."""
