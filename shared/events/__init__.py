"""Events (§3.8): the outbox, webhook subscriptions and deliveries, signatures."""

from shared.events.outbox import Event, emit
from shared.events.signing import SignatureError, sign, signature_headers, verify_signature

__all__ = ["Event", "SignatureError", "emit", "sign", "signature_headers", "verify_signature"]
