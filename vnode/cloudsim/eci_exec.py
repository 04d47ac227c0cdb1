"""ECI's interactive exec: ``ExecContainerCommand`` with ``Sync=false`` hands out a WebSocket URI.

The real cloud answers ``WebSocketUri`` (``wss://eci-<region>.aliyun.com/exec/?s=<token>``)
and documents no more of the wire than that; the simulator serves ``/exec/?s=<token>`` and
speaks the Kubernetes remote-command framing (``v5.channel.k8s.io``), which is what a client
of a container runtime's exec expects:

* every binary message starts with its channel: from the client 0 stdin and 4 resize
  (``{"Width":..,"Height":..}``), ``[255, 0]`` closes stdin; from the simulator 1 stdout,
  2 stderr, and 3 one ``metav1.Status`` JSON when the command ends, then a normal close;
* a session is one-shot and expires after ``SESSION_SECONDS`` unused.

The simulator runs no image, so what runs is the workload model's shell
(``workloads.run_shell``): a bare shell (``sh``, ``bash``) reads command lines from stdin
(with a terminal it prints a ``# `` prompt and echoes, and ``stty size`` answers the last
resize); ``cat`` copies stdin to stdout (``cat PATH`` shows a file); ``tar`` is ``kubectl cp``'s, over the files copied
into the container and its volumes' files (``files.py``); any other command runs once, as in
Sync mode, its stdin read and dropped, and one the model does not know fails with the shell's
``not found`` and exit code 127.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from vnode.cloudsim import errors, files, runs

SESSION_SECONDS = 30.0
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_SHELLS = ("sh", "bash", "ash", "dash")


@dataclasses.dataclass
class _Session:
    instance_id: str
    container: str
    command: list[str]
    tty: bool
    stdin: bool
    expires: float
    size: tuple[int, int] = (80, 24)  # width, height


def _status(code: int) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    cause = {"reason": "ExitCode", "message": str(code)}
    body: dict[str, Any] = {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [cause]},
    }
    return json.dumps(body).encode()


class Sessions:
    """The open interactive sessions of one simulated cloud."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.sessions: dict[str, _Session] = {}
        self.files = files.Files()  # what kubectl cp copied into the containers

    def open(self, origin: str, instance_id: str, container: str, command: list[str], *, tty: bool, stdin: bool) -> str:
        """Check the container runs (as Sync mode does) and return the session's WebSocket URI."""
        runs.exec(self.cloud.get(instance_id), container, ["true"])
        self.files.keep_only(self.cloud.live)
        now = time.monotonic()
        for key in [k for k, s in self.sessions.items() if s.expires < now]:
            del self.sessions[key]
        token = secrets.token_urlsafe(18)
        self.sessions[token] = _Session(instance_id, container, command, tty, stdin, now + SESSION_SECONDS)
        scheme = "wss" if origin.startswith("https") else "ws"
        return f"{scheme}{origin[origin.index(':') :]}/exec/?s={token}"

    async def socket(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.pop(request.query.get("s", ""), None)
        if session is None or session.expires < time.monotonic():
            raise web.HTTPNotFound(text="The exec session does not exist or has expired.")
        ws = web.WebSocketResponse(protocols=PROTOCOLS)
        await ws.prepare(request)
        await ws.send_bytes(bytes([STDOUT]))
        code = await self._serve(ws, session)
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + _status(code))
            await ws.close()
        return ws

    async def _input(self, ws: web.WebSocketResponse, session: _Session) -> AsyncIterator[bytes]:
        """The client's stdin chunks, resizes applied to ``session`` on the way; ends at EOF."""
        async for message in ws:
            if message.type != web.WSMsgType.BINARY or not message.data:
                if message.type in (web.WSMsgType.CLOSE, web.WSMsgType.ERROR):
                    return
                continue
            data: bytes = message.data
            if data[0] == CLOSE:
                return
            if data[0] == RESIZE:
                try:
                    size = json.loads(data[1:])
                    session.size = (int(size["Width"]), int(size["Height"]))
                except (ValueError, KeyError, TypeError):
                    pass
            elif data[0] == STDIN and session.stdin:
                yield data[1:]

    async def _serve(self, ws: web.WebSocketResponse, session: _Session) -> int:
        program = session.command[0].rsplit("/", 1)[-1] if session.command else ""
        if session.stdin and len(session.command) == 1 and program in _SHELLS:
            return await self._shell(ws, session)
        if session.stdin and session.command == ["cat"]:
            async for chunk in self._input(ws, session):
                await ws.send_bytes(bytes([STDOUT]) + chunk)
            return 0
        if program == "tar":
            return await self._tar(ws, session)
        if program == "cat" and len(session.command) > 1:
            return await self._cat(ws, session)
        output, code = self._run(session, session.command)
        await ws.send_bytes(bytes([STDOUT]) + output.encode())
        return code

    async def _shell(self, ws: web.WebSocketResponse, session: _Session) -> int:
        prompt = bytes([STDOUT]) + b"# " if session.tty else b""
        if prompt:
            await ws.send_bytes(prompt)
        pending = b""
        async for chunk in self._input(ws, session):
            if session.tty:  # a terminal echoes what is typed, a carriage return as a new line
                chunk = chunk.replace(b"\r", b"\n")
                await ws.send_bytes(bytes([STDOUT]) + chunk.replace(b"\n", b"\r\n"))
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if words[:1] in (["exit"], ["logout"]):
                    return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
                if words == ["stty", "size"]:
                    output, _ = f"{session.size[1]} {session.size[0]}\n", 0
                elif words:
                    output, _ = self._run(session, ["/bin/sh", "-c", line.decode(errors="replace")])
                else:
                    output = ""
                if session.tty:
                    output = output.replace("\n", "\r\n")
                await ws.send_bytes(bytes([STDOUT]) + output.encode() + (prompt[1:] if prompt else b""))
        return 0

    async def _tar(self, ws: web.WebSocketResponse, session: _Session) -> int:
        """``kubectl cp``: unpack stdin into the container's files, or pack its files to stdout."""
        call = files.parse(session.command)
        if isinstance(call, str):
            await ws.send_bytes(bytes([STDERR]) + f"{call}\n".encode())
            return 2
        inst = self.cloud.get(session.instance_id)
        container = session.container or inst.spec.containers[0].name
        if call.create:
            data, complaint, code = self.files.pack(inst, container, call)
            if data:
                await ws.send_bytes(bytes([STDOUT]) + data)
        else:
            received = b"".join([chunk async for chunk in self._input(ws, session)])
            complaint, code = self.files.unpack(inst, container, call, received)
        if complaint:
            await ws.send_bytes(bytes([STDERR]) + complaint.encode())
        return code

    async def _cat(self, ws: web.WebSocketResponse, session: _Session) -> int:
        """``cat PATH...``: the files copied into the container or its volumes' files."""
        inst = self.cloud.get(session.instance_id)
        container = session.container or inst.spec.containers[0].name
        code = 0
        for path in session.command[1:]:
            content = self.files.read(inst, container, path)
            if content is None:
                await ws.send_bytes(bytes([STDERR]) + f"cat: can't open '{path}': No such file or directory\n".encode())
                code = 1
            else:
                await ws.send_bytes(bytes([STDOUT]) + content)
        return code

    def _run(self, session: _Session, argv: list[str]) -> tuple[str, int]:
        self.cloud.tick()
        try:
            result = self.cloud.exec(session.instance_id, session.container, argv)
        except errors.CloudError as exc:
            return f"error: {exc.message}\n", 126
        return result.output, result.exit_code


__all__ = ["PROTOCOLS", "SESSION_SECONDS", "Sessions"]
