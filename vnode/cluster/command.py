"""``vnode cluster up | down | status | build``: the local control plane from the command line."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from vnode.cluster import build, launcher


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument("--state-dir", type=pathlib.Path, default=pathlib.Path(".vnode"), help="default: .vnode")
    parser.add_argument("--bin-dir", type=pathlib.Path, help="directory of the control-plane binaries")
    parser.add_argument("--port", type=int, help="kube-apiserver's port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--node-monitor-grace-period",
        type=int,
        default=40,
        metavar="SECONDS",
        help="how long a node may miss its lease before it turns NotReady (default: 40)",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "build":
        return build.main([])
    overrides = {"apiserver_port": args.port, "node_monitor_grace_period": args.node_monitor_grace_period}
    options = launcher.default_options(args.state_dir, **overrides)
    if args.bin_dir:
        options = launcher.Options(**{**options.__dict__, "bin_dir": args.bin_dir})
    cluster = launcher.Cluster(options)
    try:
        if args.action == "up":
            started = time.monotonic()
            info = cluster.up()
            took = time.monotonic() - started
            print(f"cluster {info.version} ready at {info.server} in {took:.1f}s; kubeconfig: {info.kubeconfig}")
        elif args.action == "down":
            stopped = cluster.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            print(json.dumps(cluster.status(), indent=2))
    except launcher.ClusterError as exc:
        print(f"vnode cluster {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
