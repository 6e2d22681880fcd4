"""Webhook signatures (Standard Webhooks layout): what a receiver checks with `verify_signature`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from shared.events import SignatureError, sign, signature_headers, verify_signature

SECRET = "whsec-test-0123456789"
BODY = b'{"event_id":"e-1","type":"points.earned","data":{"points":5}}'


def test_roundtrip_returns_the_message_id() -> None:
    headers = signature_headers(SECRET, "e-1", BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "e-1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert verify_signature(SECRET, headers, BODY) == "e-1"


def test_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    """Any Standard Webhooks receiver can recompute it: v1,base64(HMAC-SHA256(secret, "id.ts.body"))."""
    expected = hmac.new(SECRET.encode(), b"e-1.1700000000." + BODY, hashlib.sha256).digest()
    assert sign(SECRET, "e-1", 1_700_000_000, BODY) == "v1," + base64.b64encode(expected).decode()
    headers = signature_headers(SECRET, "e-1", BODY, timestamp=1_700_000_000)
    assert headers["webhook-signature"] == sign(SECRET, "e-1", 1_700_000_000, BODY)
    assert verify_signature(SECRET, headers, BODY, now=1_700_000_000) == "e-1"


def test_tampered_body_is_refused() -> None:
    headers = signature_headers(SECRET, "e-1", BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify_signature(SECRET, headers, BODY.replace(b"5", b"500"))


def test_tampered_id_or_timestamp_is_refused() -> None:
    headers = signature_headers(SECRET, "e-1", BODY)
    with pytest.raises(SignatureError):
        verify_signature(SECRET, {**headers, "webhook-id": "e-2"}, BODY)
    with pytest.raises(SignatureError):
        verify_signature(SECRET, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}, BODY)


def test_wrong_secret_is_refused() -> None:
    headers = signature_headers(SECRET, "e-1", BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify_signature("another-secret-0123456789", headers, BODY)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_stale_or_future_timestamp_is_refused(age: int) -> None:
    now = 1_700_000_000
    headers = signature_headers(SECRET, "e-1", BODY, timestamp=now - age)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(SECRET, headers, BODY, now=now)
    # Inside a wider tolerance the same signature is fine.
    assert verify_signature(SECRET, headers, BODY, now=now, tolerance=abs(age)) == "e-1"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused(missing: str) -> None:
    headers = signature_headers(SECRET, "e-1", BODY)
    del headers[missing]
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(SECRET, headers, BODY)


@pytest.mark.parametrize("stamp", ["", "soon", "1.5e9"])
def test_malformed_timestamp_is_refused(stamp: str) -> None:
    headers = {**signature_headers(SECRET, "e-1", BODY), "webhook-timestamp": stamp}
    with pytest.raises(SignatureError):
        verify_signature(SECRET, headers, BODY)


def test_several_signatures_any_match_for_secret_rotation() -> None:
    """During a rotation a sender signs with the old and the new secret; either receiver accepts."""
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    ts = int(time.time())
    both = f"{sign(old, 'e-1', ts, BODY)} {sign(new, 'e-1', ts, BODY)}"
    headers = {"webhook-id": "e-1", "webhook-timestamp": str(ts), "webhook-signature": both}
    assert verify_signature(old, headers, BODY) == "e-1"
    assert verify_signature(new, headers, BODY) == "e-1"
    with pytest.raises(SignatureError):
        verify_signature("third-secret-0123456789", headers, BODY)


def test_other_signature_versions_are_not_accepted() -> None:
    ts = int(time.time())
    v1 = sign(SECRET, "e-1", ts, BODY)
    headers = {"webhook-id": "e-1", "webhook-timestamp": str(ts), "webhook-signature": "v2," + v1.split(",", 1)[1]}
    with pytest.raises(SignatureError):
        verify_signature(SECRET, headers, BODY)
