"""The runner of one process instance: ``python -m vnode.provider.process INSTANCE_DIR``.

A small detached supervisor, standard library only, that owns the instance's containers
(processes): it starts the init containers one by one, then the app containers, collects exit
codes, restarts containers by the pod's restart policy with a back-off, times a delete's
SIGTERM-then-SIGKILL, and writes ``status.json`` on every change. The provider (the daemon's
side, ``provider``) only reads its files and signals it; the runner outlives the daemon, so
a restarted daemon adopts running instances. With a *lifeline* (a pid) it stops its
containers and removes its instance as soon as that process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from vnode.provider.process import records

__all__ = ["main"]

_BACKOFF_CAP = 30.0
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _die_with_runner(runner: int) -> None:
    """In the container's process, before its command: SIGKILL it when the runner dies, however the
    runner dies (``kill -9`` included), so a container never outlives the process that records it.
    If the runner already died between the fork and here, the parent is no longer the runner: stop."""
    if _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != runner:
        os._exit(137)


class _Container:
    def __init__(self, spec: dict[str, Any], logs: pathlib.Path, events: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log_path = logs / f"{self.name}.log"
        self.previous_path = logs / f"{self.name}.previous.log"
        self.events = events
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.pending = b""
        self.status: dict[str, Any] = {
            "name": self.name,
            "image": spec.get("image", ""),
            "state": "Waiting",
            "reason": "ContainerCreating",
            "restart_count": 0,
        }
        self.restart_at: float | None = None

    def start(self) -> None:
        if self.status.get("started_at"):  # a restart: this run's log becomes the previous one
            with contextlib.suppress(FileNotFoundError):
                self.log_path.replace(self.previous_path)
        self.log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.spec["argv"],
                env=self.spec["env"],
                cwd=self.spec["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=functools.partial(_die_with_runner, os.getpid()),
            )
        except OSError as exc:  # no such command: a container that cannot start
            self.log.close()
            self._terminated(127, "StartError", str(exc))
            self.events.append(_event("Failed", f"Error: {exc}", self.name, warning=True))
            return
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        last = {k: self.status.get(k) for k in ("exit_code", "reason", "started_at", "finished_at")}
        self.status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "state": "Running",
            "started_at": records.now(),
            "restart_count": self.status["restart_count"],
            "process": {"pid": self.proc.pid, "start_time": records.start_time(self.proc.pid)},
        }
        if last["finished_at"]:
            self.status.update(
                last_exit_code=last["exit_code"],
                last_reason=last["reason"],
                last_started_at=last["started_at"],
                last_finished_at=last["finished_at"],
            )
        self.events.append(_event("Created", f"Created container {self.name}", self.name))
        self.events.append(_event("Started", f"Started container {self.name}", self.name))

    def pump(self) -> None:
        """Move what the process wrote into the log, one timestamped line at a time."""
        if self.proc is None or self.proc.stdout is None:
            return
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                self._flush(final=True)
                return
            self.pending += chunk
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        *lines, self.pending = self.pending.split(b"\n")
        if final and self.pending:
            lines, self.pending = [*lines, self.pending], b""
        stamp = records.now().replace("+00:00", "Z").encode()
        for line in lines:
            self.log.write(stamp + b" " + line + b"\n")
        self.log.flush()

    def reap(self) -> int | None:
        """The exit code once the process ended (its output drained), else None."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        self.pump()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        self.proc = None
        exit_code = code if code >= 0 else 128 - code
        self._terminated(exit_code, "Completed" if exit_code == 0 else "Error", "")
        return exit_code

    def _terminated(self, exit_code: int, reason: str, message: str) -> None:
        self.status = {
            **self.status,
            "state": "Terminated",
            "exit_code": exit_code,
            "reason": reason,
            "message": message,
            "finished_at": records.now(),
        }
        self.status.pop("process", None)

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def back_off(self, now: float) -> None:
        self.status["restart_count"] += 1
        delay = min(_BACKOFF_CAP, 0.5 * 2 ** (self.status["restart_count"] - 1))
        self.restart_at = now + delay
        self.status.update(
            state="Waiting",
            reason="CrashLoopBackOff",
            message=f"back-off {delay:g}s restarting failed container",
            last_exit_code=self.status.get("exit_code"),
            last_reason=self.status.get("reason"),
            last_started_at=self.status.get("started_at"),
            last_finished_at=self.status.get("finished_at"),
        )
        self.events.append(_event("BackOff", f"Back-off restarting container {self.name}", self.name, warning=True))


def _event(reason: str, message: str, container: str = "", *, warning: bool = False) -> dict[str, Any]:
    return {
        "reason": reason,
        "message": message,
        "container": container,
        "timestamp": records.now(),
        "type": "Warning" if warning else "Normal",
    }


class _Runner:
    """Supervise one instance until it ends or is deleted; the status file is the only output."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.spec = records.read_json(directory / "spec.json")
        self.interval = float(self.spec.get("poll_interval", 0.1))
        self.policy = self.spec.get("restart_policy", "Always")
        self.lifeline = self.spec.get("lifeline")
        self.events: list[dict[str, Any]] = []
        self.inits = [_Container(c, directory / "logs", self.events) for c in self.spec.get("init_containers", [])]
        self.mains = [_Container(c, directory / "logs", self.events) for c in self.spec.get("containers", [])]
        self.stopping: dict[str, Any] = {}
        self.status: dict[str, Any] = {"status": "Pending"}
        self.selector = selectors.DefaultSelector()
        self.phase, self.init_index = "init", 0
        self.last_written = ""
        self.last_lifeline_check = 0.0

    @property
    def containers(self) -> tuple[_Container, ...]:
        return (*self.inits, *self.mains)

    def run(self) -> int:
        def on_term(signum: int, frame: object) -> None:
            self.stopping.setdefault("at", time.monotonic())

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        try:
            self.write()
            while not self.step(time.monotonic()):
                pass
        finally:  # whatever happens here (its directory removed under it, a bug), no container outlives it
            for c in self.containers:
                c.signal(signal.SIGKILL)
            records.kill_strays(self.directory)
        self.linger()
        return 0

    def step(self, now: float) -> bool:
        """One turn of the supervision loop; True once the instance has ended or stopped."""
        self.check_lifeline(now)
        self.stop_if_asked(now)
        for key, _ in self.selector.select(timeout=self.interval):
            key.data.pump()
        self.reap(now)
        if self.stopping:
            if all(c.proc is None for c in self.containers):
                return True
            self.write()
            return False
        if self.status["status"] == "Failed" and self.phase == "init":
            return True
        self.start_due(now)
        if self.phase == "main" and self.main_phase_ended():
            return True
        self.write()
        return False

    def write(self) -> None:
        status = self.status
        status["containers"] = [c.status for c in self.mains]
        status["init_containers"] = [c.status for c in self.inits]
        status["events"] = self.events[-50:]
        text = json.dumps(status, sort_keys=True)
        if text != self.last_written:
            records.write_json(self.directory / "status.json", status)
            self.last_written = text

    def register(self, c: _Container) -> None:
        if c.proc is not None and c.proc.stdout is not None:
            self.selector.register(c.proc.stdout, selectors.EVENT_READ, c)

    def unregister(self, c: _Container) -> None:
        if c.proc is not None and c.proc.stdout is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(c.proc.stdout)

    def check_lifeline(self, now: float) -> None:
        if self.lifeline and now - self.last_lifeline_check > 0.5:
            self.last_lifeline_check = now
            if not records.alive(self.lifeline):
                self.stopping.setdefault("at", now)
                self.stopping["grace"] = 0.0
                self.stopping["remove"] = True

    def stop_if_asked(self, now: float) -> None:
        """A SIGTERM (a delete) or a dead lifeline: SIGTERM the containers, SIGKILL after the grace."""
        stopping = self.stopping
        if stopping and "deadline" not in stopping:
            stop = records.read_json(self.directory / "stop.json")
            grace = float(stopping.get("grace", stop.get("grace_seconds", self.spec.get("grace_seconds", 30))))
            stopping["deadline"] = stopping["at"] + grace
            stopping["remove"] = stopping.get("remove") or bool(stop.get("remove"))
            self.status["status"] = "Terminating"
            for c in self.containers:
                if c.proc is not None:
                    self.events.append(_event("Killing", f"Stopping container {c.name}", c.name))
                    c.signal(signal.SIGTERM)
                c.restart_at = None
        if stopping and now >= stopping["deadline"] and not stopping.get("killed"):
            stopping["killed"] = True
            for c in self.containers:
                c.signal(signal.SIGKILL)

    def reap(self, now: float) -> None:
        """Collect exit codes, and decide restarts by the pod's restart policy."""
        for c in self.containers:
            proc = c.proc
            if proc is None:
                continue
            if proc.poll() is not None:
                self.unregister(c)
            exit_code = c.reap()
            if exit_code is None or self.stopping:
                continue
            if c in self.inits:
                if exit_code == 0:
                    self.init_index += 1
                elif self.policy == "Never":
                    self.status.update(
                        status="Failed",
                        reason="InitError",
                        finished_at=records.now(),
                        message=f"init container {c.name} exited with {exit_code}",
                    )
                else:
                    c.back_off(now)
            elif self.policy == "Always" or (self.policy == "OnFailure" and exit_code != 0):
                c.back_off(now)

    def start_due(self, now: float) -> None:
        """Start the next init container, or the app containers once the inits are done, or restarts due."""
        if self.phase == "init":
            if self.init_index >= len(self.inits):
                self.phase = "main"
                for c in self.mains:
                    c.start()
                    self.register(c)
                return
            c = self.inits[self.init_index]
            if c.proc is None and c.status["state"] != "Running" and (c.restart_at or 0) <= now:
                c.restart_at = None
                c.start()
                self.register(c)
                if c.proc is None and self.policy == "Never":  # could not start at all
                    self.status.update(status="Failed", reason="InitError", finished_at=records.now())
            return
        for c in self.mains:
            if c.proc is None and c.restart_at is not None and c.restart_at <= now:
                c.restart_at = None
                c.start()
                self.register(c)
                if c.proc is None and self.policy != "Never":  # could not start: back off as for a crash
                    c.back_off(now)

    def main_phase_ended(self) -> bool:
        """Whether every app container ended for good (the instance's phase then final); marks it Running."""
        states = [c.status["state"] for c in self.mains]
        if all(s == "Terminated" for s in states) and all(c.restart_at is None for c in self.mains):
            ok = all(c.status.get("exit_code") == 0 for c in self.mains)
            self.status.update(status="Succeeded" if ok else "Failed", finished_at=records.now())
            if not ok:
                self.status["reason"] = "Error"
            self.write()
            return True
        started = any(s == "Running" for s in states) or all(c.status.get("restart_count") for c in self.mains)
        if self.status["status"] == "Pending" and started:
            self.status.update(status="Running", started_at=self.status.get("started_at") or records.now())
        return False

    def linger(self) -> None:
        """The instance has ended (or been stopped): stay, idle, until it is deleted, so that a delete
        always finds its runner and there is exactly one process that removes the directory."""
        self.write()
        while not self.stopping:
            if self.lifeline and not records.alive(self.lifeline):
                self.stopping.update(at=time.monotonic(), remove=True)
            time.sleep(0.2)
        records.kill_strays(self.directory)  # what the containers started and left behind
        if self.stopping.get("remove") or records.read_json(self.directory / "stop.json").get("remove"):
            records.retire(self.directory)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m vnode.provider.process INSTANCE_DIR", file=sys.stderr)
        return 2
    return _Runner(pathlib.Path(args[0])).run()
