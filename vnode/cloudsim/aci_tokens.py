"""Azure AD access tokens as ARM checks them: who may call the simulated ACI, and ARM's refusals.

Besides the opaque bearer tokens it is given (``aci.default_token``), the simulator accepts a JWT
it minted itself (:func:`mint`, HS256 with a key derived from its seed: tests and tools mint one
with the claims they want) and checks it as ARM checks Azure AD's tokens, with ARM's codes (all
``401``): a bad signature or a token that is not a JWT is ``InvalidAuthenticationToken``, one past
its ``exp`` (or before its ``nbf``) ``ExpiredAuthenticationToken``, one for another resource than
ARM ``InvalidAuthenticationTokenAudience``, one from another directory than the simulator's
tenant (:func:`tenant`) ``InvalidAuthenticationTokenTenant``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from vnode.cloudsim import aci_arm

__all__ = ["AUDIENCES", "check", "mint", "tenant"]

#: The audiences ARM accepts (the resource a token was asked for).
AUDIENCES = ("https://management.azure.com/", "https://management.azure.com", "https://management.core.windows.net/")


def tenant(seed: int) -> str:
    """The simulator's directory (tenant) id: stable for the seed."""
    return str(uuid.UUID(hashlib.sha256(f"aci-tenant/{seed}".encode()).hexdigest()[:32]))


def _key(seed: int) -> bytes:
    return hashlib.sha256(f"aci-jwt-key/{seed}".encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(seed: int, *, audience: str = AUDIENCES[0], tenant_id: str | None = None, lifetime: float = 3600.0,
         now: float | None = None) -> str:  # fmt: skip
    """A token the simulator of ``seed`` accepts (or refuses, with the claims given)."""
    issued = time.time() if now is None else now
    tid = tenant_id or tenant(seed)
    claims = {"aud": audience, "tid": tid, "iat": int(issued), "nbf": int(issued), "exp": int(issued + lifetime),
              "iss": f"https://sts.windows.net/{tid}/"}  # fmt: skip
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(_key(seed), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _refuse(code: str, message: str) -> aci_arm.ArmError:
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return aci_arm.ArmError(401, code, message, {"WWW-Authenticate": challenge})


def check(token: str, seed: int, now: float | None = None) -> None:
    """Accept ``token`` or raise ARM's ``401`` for it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _refuse("InvalidAuthenticationToken", "The access token is invalid.")
    head, body, signature = parts
    expected = hmac.new(_key(seed), f"{head}.{body}".encode(), hashlib.sha256).digest()
    try:
        valid = hmac.compare_digest(_unb64(signature), expected)
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, TypeError):
        valid, claims = False, {}
    if not valid or not isinstance(claims, dict):
        raise _refuse("InvalidAuthenticationToken", "The access token has an invalid signature.")
    at = time.time() if now is None else now
    if not isinstance(claims.get("exp"), int) or at >= claims["exp"] or at < int(claims.get("nbf", 0)):
        raise _refuse(
            "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."
        )
    if claims.get("aud") not in AUDIENCES:
        raise _refuse(
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'.",
        )
    if claims.get("tid") != tenant(seed):
        raise _refuse(
            "InvalidAuthenticationTokenTenant",
            f"The access token is from the wrong issuer '{claims.get('iss')}'. "
            "It must match the tenant associated with this subscription.",
        )
