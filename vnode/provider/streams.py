"""Streaming abilities of a provider: exec with live stdin, a terminal and resizes; attach; port forwarding.

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

Port forwarding (``kubectl port-forward``) is ``SupportsPortForward``: the kubelet API speaks the
client's protocol (SPDY/3.1, see ``vnode/kubelet/portforward.py``) and asks the provider for one
byte stream per client connection:

* ``open_port(instance_id, port)`` connects to ``port`` of the instance and returns a
  :class:`PortStream`. Each call is one TCP connection to the instance (two ``curl``s through one
  ``kubectl port-forward`` are two calls); calls may run concurrently.
* **Errors**: ``NotFound`` when the instance is unknown or nothing listens on the port,
  ``InvalidSpec`` when the instance cannot be reached in its state (not running), ``Retryable``
  when the cloud could not be reached. The message reaches ``kubectl`` as the forward's error.
* The kubelet API closes the stream when the client leaves; ``read`` returning ``b""`` means
  the instance closed its side.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "PortStream",
    "SocketPortStream",
    "Streams",
    "SupportsAttach",
    "SupportsPortForward",
    "SupportsStreamingExec",
    "TerminalSize",
]


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


class PortStream(Protocol):
    """A byte stream to one port of an instance (one TCP connection there)."""

    async def read(self) -> bytes:
        """The next bytes the instance sent; ``b""`` once it closed its side."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the instance; waits while it is slow to read."""
        ...

    async def close_write(self) -> None:
        """The client sends no more (a TCP half-close); reading goes on."""
        ...

    async def close(self) -> None:
        """Release the connection; safe to repeat."""
        ...


@runtime_checkable
class SupportsPortForward(Protocol):
    async def open_port(self, instance_id: str, port: int) -> PortStream:
        """Connect to ``port`` of the instance (see the module's contract for the errors)."""
        ...


class SocketPortStream:
    """:class:`PortStream` over an asyncio stream pair, for providers that reach instances by TCP."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, chunk: int = 64 * 1024) -> None:
        self.reader = reader
        self.writer = writer
        self.chunk = chunk

    async def read(self) -> bytes:
        return await self.reader.read(self.chunk)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close_write(self) -> None:
        if self.writer.can_write_eof() and not self.writer.is_closing():
            with contextlib.suppress(OSError):
                self.writer.write_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
