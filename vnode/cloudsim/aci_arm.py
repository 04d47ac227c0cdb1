"""What every part of the ACI dialect shares: ARM's names, its error answer, and the ARM fields kept in tags.

A container group is an instance of the dialect-neutral cloud, tagged with its ARM identity
(``aci/id``, ``aci/group``, ``aci/subscription``) and the few ARM fields the cloud does not
model (``aci/meta``); the tags live in the store, so ARM state survives a restart like the rest.

Errors are ARM's ``{"error": {"code", "message"}}``; ``from_cloud`` maps the cloud's kinds to
ARM codes and statuses.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from vnode.cloudsim import errors, model, placement, timefmt

PROVIDER = "Microsoft.ContainerInstance"
RESOURCE_TYPE = f"{PROVIDER}/containerGroups"
TAG_ID = "aci/id"
TAG_GROUP = "aci/group"
TAG_SUBSCRIPTION = "aci/subscription"
TAG_META = "aci/meta"
TAG_DNS = "aci/dns"  # "<location>/<dnsNameLabel>" of a group with a label: unique among live groups
INTERNAL_TAGS = (TAG_ID, TAG_GROUP, TAG_SUBSCRIPTION, TAG_META, TAG_DNS)
MAX_USER_TAGS = placement.MAX_TAGS - len(INTERNAL_TAGS)


class ArmError(Exception):
    """An ARM error answer: HTTP status, code, message, and extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def from_cloud(exc: errors.CloudError) -> ArmError:
    """ARM's name and status for one of the cloud's errors."""
    if isinstance(exc, errors.Throttled):
        seconds = max(1, math.ceil(exc.retry_after))
        message = (
            f"The request is being throttled as the limit has been reached for operation type - {exc.action}. "
            f"Please try again after '{seconds}' seconds."
        )
        return ArmError(429, "TooManyRequests", message, {"Retry-After": str(seconds)})
    if isinstance(exc, errors.InjectedFault):
        return ArmError(exc.status, exc.code, exc.message)
    if isinstance(exc, errors.NoStock):
        return ArmError(
            409, "ServiceUnavailable", f"The requested resource is not available at this moment. {exc.message}"
        )
    if isinstance(exc, errors.AddressExhausted):
        return ArmError(409, "InsufficientSubnetSize", exc.message)
    if isinstance(exc, errors.SecurityGroupFull | errors.QuotaExceeded):
        return ArmError(409, "ContainerGroupQuotaReached", exc.message)
    if isinstance(exc, errors.SpecNotSupported):
        return ArmError(400, "InvalidContainerGroupResourceRequest", exc.message)
    if isinstance(exc, errors.InvalidRequest):
        return ArmError(400, "InvalidRequestContent", exc.message)
    if isinstance(exc, errors.NotFound):
        return ArmError(404, "ResourceNotFound", exc.message)
    if isinstance(exc, errors.IncorrectStatus):
        return ArmError(409, "ContainerGroupTransitioning", exc.message)
    if isinstance(exc, errors.Conflict):
        return ArmError(409, "Conflict", exc.message)
    return ArmError(500, "InternalServerError", exc.message)


def not_found(sub: str, rg: str, name: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{RESOURCE_TYPE}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


T = TypeVar("T")


def decode_body(decode: msgspec.json.Decoder[T], raw: bytes) -> T:
    """A request body as the struct ``decode`` makes, or ARM's ``InvalidRequestContent``."""
    try:
        return decode.decode(raw)
    except msgspec.ValidationError as exc:
        raise ArmError(
            400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ArmError(400, "InvalidRequestContent", f"The request content is not valid JSON: {exc}") from exc


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(error: ArmError) -> web.Response:
    return json_response({"error": {"code": error.code, "message": error.message}}, error.status, error.headers)


def iso(at: float) -> str | None:
    return timefmt.rfc3339_millis(at) if at else None


def group_key(sub: str, rg: str) -> str:
    return f"{sub}/{rg}".lower()


def arm_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{RESOURCE_TYPE}/{name}"


def dns_key(location: str, label: str) -> str:
    """The ``aci/dns`` tag of a label in a location: a label is unique per region, whatever the case
    or spacing the location is written in ("West Europe" is "westeurope")."""
    return f"{location.replace(' ', '').lower()}/{label.lower()}"


def path(request: web.Request) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a request on one container group."""
    info = request.match_info
    return info["sub"], info["rg"], info["name"]


def int_query(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ArmError(400, "InvalidQueryParameterValue", f"The query parameter '{key}' must be an integer.") from None
    if value < 0:
        raise ArmError(400, "InvalidQueryParameterValue", f"The query parameter '{key}' must not be negative.")
    return value


class Meta(msgspec.Struct, omit_defaults=True):
    """ARM fields the cloud does not model, kept in the ``aci/meta`` tag (short keys: tags are small)."""

    loc: str
    id: str = ""  # the ARM id as the creator spelled it (``aci/id`` is lowercased for lookups)
    os: str = "Linux"
    ip: str = ""  # ipAddress.type; "" when the request had no ipAddress
    ports: list[tuple[int, str]] = []
    dns: str = ""
    secure: list[str] = []  # names of secure environment variables (never echoed)
    zones: list[str] = []
    subnets: bool = False
    sku: str = "Standard"
    prio: str = ""  # properties.priority as sent (Regular or Spot); "" when absent


_decode_meta = msgspec.json.Decoder(Meta).decode
encode = msgspec.json.Encoder().encode


def meta_of(inst: model.Instance) -> Meta:
    raw = inst.tag(TAG_META)
    if raw:
        try:
            return _decode_meta(raw)
        except msgspec.MsgspecError:
            pass
    return Meta(loc=inst.region)  # an instance made through another dialect


def split_id(meta: Meta, inst: model.Instance) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a group; placeholders for one made by another dialect."""
    parts = meta.id.split("/")
    if len(parts) >= 9:
        return parts[2], parts[4], inst.spec.name
    return "00000000-0000-0000-0000-000000000000", "default", inst.spec.name
