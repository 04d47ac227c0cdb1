"""ARM's error answers as :mod:`vnode.errors` kinds, and the bearer token of the calls."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from vnode import errors
from vnode.provider.aci import config as aci_config

__all__ = ["ARM", "LOGIN", "Token", "error_of"]

ARM = "https://management.azure.com"
LOGIN = "https://login.microsoftonline.com"
_CAPACITY_CODES = {"ServiceUnavailable", "InsufficientSubnetSize", "ContainerGroupQuotaReached", "InsufficientCapacity"}
# Refusals of the pod's own ask, whatever their status: the pod fails with ACI's reason rather than
# waiting, unexplained, for another group (perhaps another tenant's) to give up its DNS name label.
_REFUSAL_CODES = {"DnsNameLabelAlreadyTaken"}


def error_of(what: str, status: int, code: str, message: str, retry_after: str | None) -> errors.ApiError:
    text = f"ACI {what}: {code or status}: {message}"
    if status == 429:
        try:
            hint = float(retry_after) if retry_after else 1.0
        except ValueError:
            hint = 1.0
        return errors.Throttled(text, code=code or "TooManyRequests", retry_after=hint)
    if status >= 500:
        return errors.Unavailable(text, code=code or str(status))
    if status in (401, 403):
        return errors.Forbidden(text, code=code or str(status))
    if status == 404:
        return errors.NotFound(text, code=code or "ResourceNotFound")
    if code in _CAPACITY_CODES:
        return errors.CapacityError(text, code=code)
    if code in _REFUSAL_CODES:
        return errors.InvalidSpec(text, code=code)
    if status == 409:
        return errors.Conflict(text, code=code or "Conflict")
    if status == 400:
        return errors.InvalidSpec(text, code=code or "BadRequest")
    return errors.Unavailable(text, code=code or str(status))


class Token:
    """A bearer token: fixed, or from Azure AD's client-credentials flow, renewed 5 min early."""

    def __init__(self, config: aci_config.AciSettings) -> None:
        self.config = config
        self._token = config.token
        self._expires = float("inf") if self._token else 0.0
        self._lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession) -> str:
        if self._token and time.monotonic() < self._expires:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "scope": f"{ARM}/.default",
            }
            url = f"{LOGIN}/{self.config.tenant_id}/oauth2/v2.0/token"
            try:
                async with session.post(url, data=form) as response:
                    body = await response.json(content_type=None)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise errors.Unavailable(f"ACI: token endpoint: {exc}", code="TokenEndpoint") from exc
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                raise errors.Forbidden(f"ACI: token refused ({status})", code="InvalidClient")
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 3600)) - 300
            return self._token
