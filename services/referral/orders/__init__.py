"""Orders and commission (§6.4): chain snapshot, accrual, receipt, refunds and clawback, release."""
