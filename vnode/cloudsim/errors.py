"""What can go wrong in the cloud, dialect-neutral; each dialect maps a kind to its own code and status.

CloudError
├── InvalidRequest        the caller's input is wrong; nothing changed
│   ├── MissingParameter  a required parameter is absent
│   ├── InvalidParameter  a parameter is malformed or out of range
│   └── SpecNotSupported  no instance size covers the request (e.g. 65 vCPU)
├── NotFound              no such instance (or container, vSwitch, security group)
├── Conflict
│   ├── IdempotentMismatch  a ClientToken reused with different parameters
│   ├── IncorrectStatus     the instance's status does not allow the operation
│   └── DiskInUse           a cloud disk is attached to another instance already
├── Throttled             the action's token bucket is empty; retry after ``retry_after`` s
├── CapacityError         the world cannot hold the instance; nothing changed
│   ├── NoStock           no zone among the candidates has stock for the spec
│   ├── AddressExhausted  no candidate vSwitch has a free address
│   ├── SecurityGroupFull the security group holds its maximum of instances
│   └── QuotaExceeded     the regional vCPU quota would be exceeded
└── InjectedFault         an error injected through the admin API (code and status given)
"""

from __future__ import annotations


class CloudError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(CloudError):
    pass


class MissingParameter(InvalidRequest):
    def __init__(self, param: str) -> None:
        super().__init__(
            f'The input parameter "{param}" that is mandatory for processing this request is not supplied.'
        )
        self.param = param


class InvalidParameter(InvalidRequest):
    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f'The specified parameter "{param}" is not valid: {detail}')
        self.param = param


class SpecNotSupported(InvalidRequest):
    pass


class NotFound(CloudError):
    pass


class ImageCacheNotFound(NotFound):
    pass


class Conflict(CloudError):
    pass


class IdempotentMismatch(Conflict):
    pass


class IncorrectStatus(Conflict):
    pass


class DiskInUse(Conflict):
    pass


class Throttled(CloudError):
    def __init__(self, action: str, retry_after: float = 1.0) -> None:
        super().__init__(f"Request was denied due to user flow control ({action}).")
        self.action = action
        self.retry_after = retry_after


class CapacityError(CloudError):
    pass


class NoStock(CapacityError):
    pass


class AddressExhausted(CapacityError):
    pass


class SecurityGroupFull(CapacityError):
    pass


class QuotaExceeded(CapacityError):
    pass


class InjectedFault(CloudError):
    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
