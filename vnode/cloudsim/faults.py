"""Faults injected through the admin API: errors, latency and throttling per operation.

Operations are the cloud's dialect-neutral names (``create``, ``describe``, ``status``, ...),
so a fault set for ``create`` hits ECI's CreateContainerGroup and ACI's PUT alike.
"""

from __future__ import annotations

import random

import pydantic

from vnode.cloudsim import errors

OPERATIONS = (
    "create",
    "describe",
    "status",
    "events",
    "delete",
    "restart",
    "logs",
    "exec",
    "price",
    "usage",
    "resources",
    "regions",
    "metrics",
    "update",
    "imagecache",
)


class Fault(pydantic.BaseModel):
    """What to do to one operation: fail a share of calls, delay every call, throttle a share."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    error_rate: float = pydantic.Field(default=0.0, ge=0.0, le=1.0)
    error_code: str = "ServiceUnavailable"
    error_status: int = pydantic.Field(default=503, ge=400, le=599)
    latency_ms: float = pydantic.Field(default=0.0, ge=0.0, le=60_000.0)
    throttle_rate: float = pydantic.Field(default=0.0, ge=0.0, le=1.0)


class Faults:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.by_operation: dict[str, Fault] = {}

    def set(self, operation: str, fault: Fault | None) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}: one of {', '.join(OPERATIONS)}")
        if fault is None:
            self.by_operation.pop(operation, None)
        else:
            self.by_operation[operation] = fault

    def latency(self, operation: str) -> float:
        fault = self.by_operation.get(operation)
        return fault.latency_ms / 1000.0 if fault else 0.0

    def check(self, operation: str) -> None:
        """Raise the injected error or throttling for this call, if the dice say so."""
        fault = self.by_operation.get(operation)
        if fault is None:
            return
        if fault.throttle_rate and self.rng.random() < fault.throttle_rate:
            raise errors.Throttled(operation)
        if fault.error_rate and self.rng.random() < fault.error_rate:
            raise errors.InjectedFault(fault.error_code, fault.error_status, f"injected fault on {operation}")
