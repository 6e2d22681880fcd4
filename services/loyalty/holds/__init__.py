"""Holds (§5.8): points reserved at checkout, then captured, voided or expired."""
