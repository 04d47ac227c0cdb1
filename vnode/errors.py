"""The one error tree of vnode's remote calls: the Kubernetes API and every cloud provider raise these.

Callers decide what to do from the *kind* of an error, never from its message or from a
status code, so the kinds below are the ones that change behaviour::

    VnodeError
    ├── ConfigError            settings are invalid: refuse to start (one line naming the setting)
    └── ApiError               a remote API refused or could not be reached
        ├── NotFound           the object or instance does not exist (a delete treats it as done)
        ├── Conflict           exists already, stale resourceVersion, failed UID precondition
        ├── Gone               a watch's resourceVersion is too old (410): re-list
        ├── Forbidden          authentication or authorisation refused: retrying will not help
        ├── InvalidSpec        the request can never succeed as asked (65 vCPU, unsupported volume):
        │                      never retry, fail the pod fast with the message as its reason
        └── Retryable          may succeed later; ``retry_after`` is the server's hint in seconds
            ├── Throttled      rate-limited (HTTP 429, ECI ``Throttling.User``)
            ├── Unavailable    unreachable, timed out, 5xx: the cloud or API server is unhealthy
            ├── CapacityError  stock-out or exhausted vSwitch in every candidate zone: retry later,
            │                  a provider fails over between candidates before raising it
            └── VolumeInUse    a volume (a cloud disk) is attached to another instance: the pod
                               waits like the kubelet's (ContainerCreating, FailedMount)

Every error carries ``code`` (the remote's own code, e.g. ``Throttling.User`` or ``NotFound``)
for logs and metrics. Wrap lower-level exceptions with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "CapacityError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidSpec",
    "NotFound",
    "Retryable",
    "Throttled",
    "Unavailable",
    "VnodeError",
    "VolumeInUse",
]


class VnodeError(Exception):
    """The root of everything vnode raises on purpose."""


class ConfigError(VnodeError):
    """A setting is invalid; ``str(error)`` is one line that names it."""


class ApiError(VnodeError):
    """A remote API refused a call or could not be reached."""

    def __init__(self, message: str, *, code: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).__name__
        self.kind = kind  # what the API server says the error is about (its Status' details.kind), if it says


class NotFound(ApiError):
    """The object or instance does not exist."""


class Conflict(ApiError):
    """The object exists already, or a precondition (resourceVersion, UID) failed."""


class Gone(ApiError):
    """A watch resumed from a resourceVersion that is too old: list again."""


class Forbidden(ApiError):
    """Credentials were refused or lack a permission; retrying as-is will not help."""


class InvalidSpec(ApiError):
    """The request can never succeed as asked; the message says why, in words fit for a pod's status."""


class Retryable(ApiError):
    """May succeed if tried again later; ``retry_after`` is the remote's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Throttled(Retryable):
    """Rate-limited by the remote."""


class Unavailable(Retryable):
    """The remote is unreachable, timed out, or answered with a server error."""


class CapacityError(Retryable):
    """No stock or no free address in any candidate zone/vSwitch."""


class VolumeInUse(Retryable):
    """A volume the instance mounts (a cloud disk) is attached to another instance."""
