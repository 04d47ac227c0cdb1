"""The local playground behind ``make up``: the control plane and, around it, the rest of vnode's world.

A playground is a state directory (``.vnode/``) holding the control plane's files and a
record of the other long-running parts (``playground.json``), each a detached process with its
log in ``logs/``. ``up`` starts what is not running and leaves alone what is; ``down`` stops
every part it recorded, then the control plane. Parts are listed in start order by
``services()``, each with a readiness check, so ``up`` returns only when the world answers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from vnode.cluster import launcher, procs


class PlaygroundError(RuntimeError):
    """A part of the playground failed to start; the message names it and its log."""


@dataclasses.dataclass(frozen=True)
class Service:
    """One long-running part: how to start it and how to know it is ready."""

    name: str
    command: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = 60.0


@dataclasses.dataclass(frozen=True)
class Context:
    state_dir: pathlib.Path
    cluster: launcher.Info

    def vnode(self, *args: str) -> list[str]:
        """A command line running this very vnode installation."""
        return [sys.executable, "-m", "vnode", *args]


def http_ok(url: str, *, timeout: float = 1.0) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bool(200 <= resp.status < 300)
        except (OSError, urllib.error.URLError):
            return False

    return check


def services(ctx: Context) -> list[Service]:
    """The parts after the control plane, in start order. Each later issue adds its part here."""
    return []


class Playground:
    def __init__(self, state_dir: pathlib.Path, *, options: launcher.Options | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.cluster = launcher.Cluster(options or launcher.default_options(self.state_dir))
        self.procs = procs.Supervisor(self.state_dir / "playground.json", self.state_dir / "logs")

    def up(self) -> Context:
        ctx = Context(self.state_dir, self.cluster.up())
        env = {**os.environ, "KUBECONFIG": str(ctx.cluster.kubeconfig)}
        live = self.procs.live()
        for service in services(ctx):
            if service.name in live and service.ready():
                continue
            if service.name in live:
                self.procs.stop([service.name])
            child = self.procs.spawn(service.name, service.command, env={**env, **service.env})
            deadline = time.monotonic() + service.timeout
            while not service.ready():
                if child.poll() is not None:
                    log = self.state_dir / "logs" / f"{service.name}.log"
                    raise PlaygroundError(f"{service.name} exited with {child.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise PlaygroundError(f"{service.name} not ready after {service.timeout:.0f}s")
                time.sleep(0.2)
        return ctx

    def down(self) -> list[str]:
        record = self.procs.read()
        started = list(record.get("processes", {}))
        stopped = self.procs.stop(reversed(started))
        return stopped + self.cluster.down()

    def status(self) -> dict[str, object]:
        return {"cluster": self.cluster.status(), "services": self.procs.live()}


STORIES = """\
Try next (export KUBECONFIG={kubeconfig}):
  kubectl get nodes -o wide
  kubectl get pods -A
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=pathlib.Path, default=pathlib.Path(".vnode"), help="default: .vnode")


def run(args: argparse.Namespace) -> int:
    playground = Playground(args.state_dir)
    try:
        if args.action == "up":
            started = time.monotonic()
            ctx = playground.up()
            print(f"playground ready in {time.monotonic() - started:.1f}s: {ctx.cluster.server}")
            print(STORIES.format(kubeconfig=ctx.cluster.kubeconfig))
        elif args.action == "down":
            stopped = playground.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            print(json.dumps(playground.status(), indent=2))
    except (launcher.ClusterError, PlaygroundError) as exc:
        print(f"vnode playground {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
