"""The network side of the world: vSwitches that hand out addresses, security groups with caps.

A vSwitch's CIDR decides how many instances it can hold: Alibaba reserves the first three and
the last address of every vSwitch, the rest are allocated lowest-first and returned on delete.
A security group holds at most 2,000 instances (ordinary) or 65,536 (enterprise, "far more").
"""

from __future__ import annotations

import dataclasses
import heapq
import ipaddress
import socket
import struct

ORDINARY_GROUP_CAP = 2_000
ENTERPRISE_GROUP_CAP = 65_536


class AddressExhausted(RuntimeError):
    """The vSwitch has no free address."""


_PACK = struct.Struct("!I")


def to_int(address: str) -> int:
    """``10.1.0.3`` -> its 32-bit value (``ipaddress`` costs microseconds per call on the create path)."""
    try:
        if address.count(".") == 3:  # inet_aton also takes the legacy "10.1.3"
            return int(_PACK.unpack(socket.inet_aton(address))[0])
    except OSError:
        pass
    raise ValueError(f"{address!r} is not an IPv4 address")


def to_text(value: int) -> str:
    return socket.inet_ntoa(_PACK.pack(value))


class AddressPool:
    """Free host addresses of one CIDR, lowest first; ``take`` and ``give_back`` are O(log n).

    The CIDR is parsed once; addresses are kept as integers and converted with ``socket``.
    """

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        first = int(self.network.network_address) + 3
        last = int(self.network.broadcast_address) - 1
        self._first, self._last = first, last
        self._next = first  # never-used addresses start here
        self._freed: list[int] = []  # heap of returned addresses
        self._used: set[int] = set()
        self.exhausted = False  # fault injection: refuse as if full

    @property
    def capacity(self) -> int:
        return max(0, self._last - self._first + 1)

    @property
    def used(self) -> int:
        return len(self._used)

    @property
    def free(self) -> int:
        return 0 if self.exhausted else self.capacity - self.used

    def take(self) -> str:
        if self.exhausted:
            raise AddressExhausted(f"{self.network} is exhausted (injected)")
        while self._freed:
            address = heapq.heappop(self._freed)
            if address not in self._used:
                self._used.add(address)
                return to_text(address)
        while self._next <= self._last:
            address = self._next
            self._next += 1
            if address not in self._used:
                self._used.add(address)
                return to_text(address)
        raise AddressExhausted(f"all {self.capacity} addresses of {self.network} are in use")

    def claim(self, address: str) -> None:
        """Mark ``address`` as used (rebuilding the pool from stored instances)."""
        value = to_int(address)
        if not self._first <= value <= self._last:
            raise ValueError(f"{address} is not a host address of {self.network}")
        self._used.add(value)

    def give_back(self, address: str) -> None:
        value = to_int(address)
        if value in self._used:
            self._used.discard(value)
            heapq.heappush(self._freed, value)


@dataclasses.dataclass
class VSwitch:
    id: str
    zone: str
    cidr: str
    vpc_id: str
    pool: AddressPool = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pool = AddressPool(self.cidr)


@dataclasses.dataclass
class SecurityGroup:
    id: str
    kind: str  # "ordinary" | "enterprise"
    vpc_id: str
    members: int = 0

    @property
    def cap(self) -> int:
        return ENTERPRISE_GROUP_CAP if self.kind == "enterprise" else ORDINARY_GROUP_CAP
