"""Withdrawals (§6.5): available commission out to the member, through a state machine on the ledger."""
