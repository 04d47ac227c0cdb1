"""Exec into a container as ACI does it: a POST that opens a session, then a WebSocket that runs it.

``POST …/containers/{c}/exec`` answers ``{"webSocketUri", "password"}``; the client connects to
``/aci-exec/{session}``, sends the password as its first message and reads the command's
output. A bare shell (``/bin/sh``) is interactive: each message is a command line, ``exit``
ends. Sessions are one-shot and expire after ``SESSION_SECONDS``.
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


class _ExecBody(msgspec.Struct):
    command: str = ""


_decode_exec = msgspec.json.Decoder(_ExecBody).decode


@dataclasses.dataclass
class _Session:
    instance_id: str
    container: str
    command: str
    password: str
    expires: float


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
        self.sessions[session_id] = _Session(inst.id, container, body.command, password, now + SESSION_SECONDS)
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
            async for message in socket:
                if message.type != web.WSMsgType.TEXT:
                    break
                line = message.data.strip()
                if line in ("exit", "logout"):
                    break
                await socket.send_str(self._run(session, ["/bin/sh", "-c", line]))
        else:
            await socket.send_str(self._run(session, argv))
        await socket.close()
        return socket

    def _run(self, session: _Session, argv: list[str]) -> str:
        cloud = self.dialect.cloud
        cloud.tick()
        try:
            return cloud.exec(session.instance_id, session.container, argv).output
        except errors.CloudError as exc:
            return f"error: {exc.message}\n"
