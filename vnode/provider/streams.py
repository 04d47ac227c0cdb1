"""Interactive abilities of a provider: exec with live stdin, a terminal and resizes, and attach.

``base.SupportsExec`` is request/response: the whole stdin goes in, the whole output comes
back when the command ends. That serves ``kubectl exec pod -- cmd`` and piped stdin, but not
a shell with a terminal, nor ``kubectl attach``. A cloud that can hold a session open (ECI's
``ExecContainerCommand`` hands out a WebSocket URL, ACI's exec too) implements the Protocols
here instead; the kubelet API prefers them when present and falls back to ``SupportsExec``.

The contract:

* **Streams belong to one client session.** ``stdin`` yields what the client typed, in order,
  and ends when the client closes its input (EOF); it is ``None`` when the client did not ask
  for stdin. ``resizes`` yields terminal sizes (the first one soon after the start, when the
  client has a terminal), and is ``None`` without ``tty``. ``write_stdout``/``write_stderr``
  apply backpressure (await them); with ``tty`` there is no separate stderr: write everything
  to stdout. Writing after the client left raises ``ConnectionResetError``.
* **Cancellation means the client went away.** The kubelet cancels the call when the
  connection drops; the provider stops the remote process (exec) or detaches (attach), and
  lets ``CancelledError`` propagate.
* **Errors** are those of :mod:`vnode.errors`: ``NotFound`` when the instance or container is
  unknown, ``InvalidSpec`` when the command cannot run (not found in the image: the kubelet
  reports it as a failed exec), ``Retryable`` when the cloud could not be reached.
* Port forwarding has no Protocol yet: the API server tunnels ``kubectl port-forward`` as SPDY
  inside a WebSocket even to kubelets that take WebSockets, and vnode does not speak SPDY
  (see docs/kubelet-api.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Streams", "SupportsAttach", "SupportsStreamingExec", "TerminalSize"]


@dataclasses.dataclass(frozen=True, slots=True)
class TerminalSize:
    """A terminal's size in character cells, as the client's terminal reports it."""

    width: int
    height: int


class Streams(Protocol):
    """One client's side of an exec or attach session (see the module's contract)."""

    @property
    def stdin(self) -> AsyncIterator[bytes] | None: ...

    @property
    def resizes(self) -> AsyncIterator[TerminalSize] | None: ...

    async def write_stdout(self, data: bytes) -> None: ...

    async def write_stderr(self, data: bytes) -> None: ...


@runtime_checkable
class SupportsStreamingExec(Protocol):
    async def exec_stream(
        self, instance_id: str, container: str, command: Sequence[str], streams: Streams, *, tty: bool
    ) -> int:
        """Run ``command`` (argv, never re-split or re-quoted) with live streams; return its exit code."""
        ...


@runtime_checkable
class SupportsAttach(Protocol):
    async def attach(self, instance_id: str, container: str, streams: Streams, *, tty: bool) -> int | None:
        """Connect ``streams`` to the container's main process. Returns its exit code when it
        ends, or ``None`` when the session ended first (stdin closed with nothing left to read)."""
        ...
