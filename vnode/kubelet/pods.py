"""What the kubelet API needs to know of its node's pods, and nothing more: the seam to the node package.

The node controller already holds every pod bound to its node and the instance that runs it;
the kubelet API asks it through :class:`PodDirectory` instead of watching pods a second time.
Keeping the seam this thin (two lookups, one frozen value) lets the daemon wire the server in
without either package importing the other's internals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["PodDirectory", "PodInstance"]


@dataclasses.dataclass(frozen=True, slots=True)
class PodInstance:
    """One pod on this node and the cloud instance that runs it.

    ``instance_id`` is empty while the instance is not created yet. ``containers`` lists the
    names of init and regular containers. ``manifest`` is the pod object as the API server
    returned it (JSON-decoded), served as is by ``/pods``.
    """

    namespace: str
    name: str
    uid: str
    instance_id: str
    containers: tuple[str, ...]
    manifest: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class PodDirectory(Protocol):
    """The node's current view of its pods. Both calls are cheap, synchronous reads of a cache
    the node keeps anyway; they never do I/O and may be called from any task of the loop."""

    def lookup(self, namespace: str, name: str) -> PodInstance | None:
        """The pod ``namespace/name`` if it is bound to this node, else ``None``."""
        ...

    def all(self) -> Sequence[PodInstance]:
        """Every pod bound to this node (for ``/pods`` and the stats routes)."""
        ...
