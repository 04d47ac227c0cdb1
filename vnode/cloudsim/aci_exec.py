"""Exec into a container as ACI does it: a POST that opens a session, then a WebSocket that runs it.

``POST …/containers/{c}/exec`` (``command``, ``terminalSize``) answers ``{"webSocketUri",
"password"}``; the client connects to ``/aci-exec/{session}``, sends the password as its first
message and reads the command's output. ACI's exec is a terminal and only that: no exit code, no
stdin apart from what is typed, no resize after the start (the size is the request's). A bare
shell (``/bin/sh``) is what users run there (az container exec's own advice): it prints a ``# ``
prompt, echoes what is typed (text or binary messages; a carriage return is a new line; output
lines end in CR LF, as a terminal's do), runs each line, answers ``stty size`` with the session's
size, and ends on ``exit`` or Ctrl-D at the start of a line. Any other command runs once and its
output is sent. Sessions are one-shot and expire after ``SESSION_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import secrets
import shlex
import time

import msgspec
from aiohttp import web

from vnode.cloudsim import aci_arm, aci_dialect, errors

SESSION_SECONDS = 300.0
_SHELLS = ("sh", "bash", "ash", "dash")
PROMPT = "# "
CTRL_D = "\x04"


class _TerminalSize(msgspec.Struct):
    rows: int = 24
    cols: int = 80


class _ExecBody(msgspec.Struct, rename="camel"):
    command: str = ""
    terminal_size: _TerminalSize = msgspec.field(default_factory=_TerminalSize)


_decode_exec = msgspec.json.Decoder(_ExecBody).decode


@dataclasses.dataclass
class _Session:
    instance_id: str
    container: str
    command: str
    password: str
    expires: float
    size: tuple[int, int] = (24, 80)  # rows, columns: the request's terminalSize


class Exec:
    """The exec routes of one dialect; its state is the open sessions."""

    def __init__(self, dialect: aci_dialect.Dialect) -> None:
        self.dialect = dialect
        self.sessions: dict[str, _Session] = {}

    async def start(self, request: web.Request) -> web.Response:
        sub, rg, name = aci_arm.path(request)
        container = request.match_info["container"]
        try:
            body = _decode_exec(await request.read())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise aci_arm.ArmError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc
        await self.dialect.admit("exec")
        inst = self.dialect.lookup(sub, rg, name)
        if inst is None:
            raise aci_arm.not_found(sub, rg, name)
        names = [c.name for c in inst.spec.containers]
        if container not in names:
            raise aci_arm.ArmError(404, "ContainerNotFound", f"The container '{container}' does not exist in '{name}'.")
        if inst.containers[names.index(container)].current.state != "Running":
            raise aci_arm.ArmError(409, "ContainerGroupTransitioning", f"The container '{container}' is not running.")
        now = time.monotonic()
        for key in [k for k, s in self.sessions.items() if s.expires < now]:
            del self.sessions[key]
        session_id = secrets.token_urlsafe(18)
        password = secrets.token_urlsafe(24)
        size = (body.terminal_size.rows, body.terminal_size.cols)
        self.sessions[session_id] = _Session(inst.id, container, body.command, password, now + SESSION_SECONDS, size)
        uri = request.url.with_scheme("wss").with_path(f"/aci-exec/{session_id}").with_query(None)
        return aci_arm.json_response({"webSocketUri": str(uri), "password": password})

    async def socket(self, request: web.Request) -> web.StreamResponse:
        """The exec WebSocket: the first message is the password; then the command's output."""
        session = self.sessions.pop(request.match_info["session"], None)
        if session is None or session.expires < time.monotonic():
            raise aci_arm.ArmError(404, "ExecSessionNotFound", "The exec session does not exist or has expired.")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        first = await socket.receive(timeout=30)
        if first.type != web.WSMsgType.TEXT or first.data != session.password:
            await socket.close(code=4401, message=b"bad password")
            return socket
        argv = shlex.split(session.command) if session.command else ["/bin/sh"]
        if len(argv) == 1 and argv[0].rsplit("/", 1)[-1] in _SHELLS:
            await self._terminal(socket, session)
        else:
            await socket.send_str(self._run(session, argv))
        await socket.close()
        return socket

    async def _terminal(self, socket: web.WebSocketResponse, session: _Session) -> None:
        """A shell on the session's terminal, until ``exit``, Ctrl-D on an empty line or the socket's close."""
        await socket.send_str(PROMPT)
        pending = ""
        async for message in socket:
            if message.type == web.WSMsgType.TEXT:
                typed = str(message.data)
            elif message.type == web.WSMsgType.BINARY:
                typed = bytes(message.data).decode(errors="replace")
            else:
                return
            if typed.startswith(CTRL_D) and not pending:
                return
            typed = typed.replace("\r\n", "\n").replace("\r", "\n").replace(CTRL_D, "")
            await socket.send_str(typed.replace("\n", "\r\n"))  # the terminal's echo
            pending += typed
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                words = line.split()
                if words[:1] in (["exit"], ["logout"]):
                    return
                if words == ["stty", "size"]:
                    output = f"{session.size[0]} {session.size[1]}\n"
                else:
                    output = self._run(session, ["/bin/sh", "-c", line]) if words else ""
                await socket.send_str(output.replace("\n", "\r\n") + PROMPT)

    def _run(self, session: _Session, argv: list[str]) -> str:
        cloud = self.dialect.cloud
        cloud.tick()
        try:
            return cloud.exec(session.instance_id, session.container, argv).output
        except errors.CloudError as exc:
            return f"error: {exc.message}\n"
