"""``vnode operator``: run a provider's operator, which keeps its custom resources in its cloud.

A provider declares its operator in its profile (``Profile.operator``, ``module:function``); this
command reads the provider's settings as ``vnode run`` does (the same environment variables and
flags), then runs that function until SIGTERM or SIGINT. Which resources an operator serves is
the provider's business (ECI's serves ``ImageCache``); the core names none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import cast

from vnode import errors, settings
from vnode.provider import registry

__all__ = ["configure", "run"]

OperatorFn = Callable[..., Awaitable[None]]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider", default=None, help=f"the provider whose operator runs (default {registry.DEFAULT})"
    )
    parser.add_argument("--kubeconfig", default="", help="kubeconfig (default: in-cluster, else ~/.kube/config)")
    parser.add_argument(
        "--refresh-interval",
        type=float,
        default=10.0,
        help="seconds between reads of a resource's state in the cloud, written to its status (default 10)",
    )
    parser.add_argument("--log-level", default="info")


def operator_of(provider: str) -> OperatorFn:
    """The provider's operator function; ``ConfigError`` if it has none."""
    found = registry.profile_of(provider)
    if not found.operator:
        raise errors.ConfigError(f"--provider={provider}: this provider has no operator")
    module_name, _, attr = found.operator.partition(":")
    return cast(OperatorFn, getattr(importlib.import_module(module_name), attr))


async def _serve(args: argparse.Namespace) -> None:
    # The operator is no node; the name only satisfies the settings' model.
    config = settings.load(os.environ, {"provider": args.provider, "node_name": "vnode-operator"})
    function = operator_of(config.provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await function(config, kubeconfig=args.kubeconfig, refresh_interval=args.refresh_interval, stop_flag=stop)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except errors.ConfigError as exc:
        print(f"vnode operator: {exc}", file=sys.stderr)
        return 1
    return 0
