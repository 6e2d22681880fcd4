"""Orders (§5.4): points earned from purchases, refunds and the release of pending points."""
