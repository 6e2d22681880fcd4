"""Webhook signatures in the Standard Webhooks layout (standardwebhooks.com).

Headers `webhook-id` (the event id), `webhook-timestamp` (Unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's UTF-8 bytes), so a
receiver can use any Standard Webhooks library, or the ten lines of `verify_signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SignatureError", "sign", "signature_headers", "verify_signature"]

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The request is not signed by the holder of the secret, or the signature is stale."""


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, message_id, ts, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check the headers against the body; returns the message id. Raises `SignatureError`."""
    message_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not message_id or not stamp or not given:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - ts) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    expected = sign(secret, message_id, ts, body)
    # A header may carry several space-separated signatures (secret rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in given.split()):
        raise SignatureError("no signature matches")
    return message_id
