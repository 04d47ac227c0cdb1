"""The ECI dialect's authentication: Alibaba's V3 signature (ACS3-HMAC-SHA256), date and nonce.

The key must be one of the world's AccessKeys, the body hash must match, the signature must
be the one the secret gives (``acs3``), the date within ``NONCE_WINDOW`` of now, and the
nonce signed and not seen within that window (a replayed request is refused).
"""

from __future__ import annotations

import calendar
import collections
import functools
import hashlib
import re
import time

from aiohttp import web

from vnode.cloudsim import acs3
from vnode.cloudsim import cloud as cloudmod

NONCE_WINDOW = 900.0  # seconds a nonce is remembered and a request date is accepted
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the SDK's body hash for a bodyless POST


class ApiError(Exception):
    """An error answered as-is (routing and authentication, decided before the cloud sees the call)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


class Authenticator:
    """Checks requests against one cloud's AccessKeys; remembers the nonces it has seen."""

    def __init__(self, cloud: cloudmod.Cloud) -> None:
        self.cloud = cloud
        self._nonces: collections.OrderedDict[str, float] = collections.OrderedDict()

    def check(self, request: web.Request, pairs: list[tuple[str, str]], body: bytes) -> None:
        try:
            auth = acs3.parse(request.headers.get("Authorization"))
        except acs3.SignatureError as exc:
            raise ApiError(
                "IncompleteSignature", 400, f"The request signature does not conform to Aliyun standards: {exc}"
            ) from exc
        secret = self.cloud.secrets.get(auth.access_key_id)
        if secret is None:
            raise ApiError("InvalidAccessKeyId.NotFound", 404, "Specified access key is not found.")
        headers = request.headers  # case-insensitive, as the canonical request needs
        payload_hash = headers.get("x-acs-content-sha256", "")
        if payload_hash != (EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()):
            raise ApiError("IncompleteSignature", 400, "x-acs-content-sha256 does not match the request body.")
        canonical = acs3.canonical_request(
            request.method, request.path, pairs, headers, auth.signed_headers, payload_hash
        )
        if not acs3.verify(secret, auth, canonical):
            raise ApiError(
                "SignatureDoesNotMatch",
                400,
                "Specified signature is not matched with our calculation. Check your AccessKey secret.",
            )
        now = time.time()
        sent = _parse_date(headers.get("x-acs-date", ""))
        if sent is None:
            raise ApiError("InvalidTimeStamp.Format", 400, "Specified time stamp or date value is not well formatted.")
        if abs(now - sent) > NONCE_WINDOW:
            raise ApiError("InvalidTimeStamp.Expired", 400, "Specified time stamp or date value is expired.")
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce or "x-acs-signature-nonce" not in auth.signed_headers:
            raise ApiError("MissingSignatureNonce", 400, "The signature nonce is missing or not signed.")
        while self._nonces and next(iter(self._nonces.values())) < now - NONCE_WINDOW:
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            raise ApiError("SignatureNonceUsed", 400, "Specified signature nonce was used already.")
        self._nonces[nonce] = now


_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z")


@functools.lru_cache(maxsize=64)  # requests sent within the same second carry the same date
def _parse_date(text: str) -> float | None:
    """``2026-11-28T12:00:00Z`` -> epoch seconds (strptime is ten times slower on this hot path)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except ValueError:
        return None
