"""Percent-encoding as Alibaba Cloud's ACS3 signature wants it, fast enough for every create call.

``quote(value)`` equals ``urllib.parse.quote(value, safe="~")``: everything but ``A-Z a-z 0-9 - _
. ~`` is escaped, ``/`` included. The ECI client quotes each parameter of each call to sign and
send it, and the simulated cloud quotes them again to check the signature; a create carries the
pod's projected volumes (a service-account token, base64 file contents), kilobytes unique to
each pod, where ``urllib``'s byte-by-byte loop cost more than the rest of the signing (37 µs
for a 1.5 KB base64 value against 10 µs here).
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["quote"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.~-]")
_ESCAPES = {chr(c): f"%{c:02X}" for c in range(128)}


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group()]


def quote(value: str) -> str:
    if not value.isascii():
        return urllib.parse.quote(value, safe="~")
    return _UNSAFE.sub(_escape, value)
