"""``vnode run``: parse flags over the field's environment variables, then run the daemon until a signal.

Every flag is optional and overrides its environment variable (``--node-name`` over
``VNODE_NODE_NAME`` over ``POD_NAME``; a provider's own flags over its own variables). An invalid
setting stops the command before anything starts, with one line naming it, and exit code 2.
The environment is read here, once (``settings.load``); the daemon's parts take the settings.

SIGTERM asks the daemon to ``terminate()`` (it drains the node first if its StatefulSet is
removing this replica), SIGINT to ``stop()``; the lifecycle itself is the Daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc as collector  # the interpreter's; vnode.gc is the instance collector
import logging
import os
import pathlib
import signal
import sys
import tempfile
from typing import Any

from vnode import allocator, credentials, daemon, early_signals, errors, eventloop, settings
from vnode.kube import client, config, identity
from vnode.observability import logs, metrics
from vnode.provider import registry

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)

# flag -> (setting path, type, help). The environment variable is named in the help.
FLAGS: dict[str, tuple[str, Any, str]] = {
    "--node-name": ("node_name", str, "the Node's name (env VNODE_NODE_NAME, else POD_NAME)"),
    "--provider": (
        "provider",
        str,
        f"the cloud: {', '.join(registry.BUILTIN)}, or a vnode.providers entry point (env VNODE_PROVIDER)",
    ),
    "--kubeconfig": ("kubeconfig", str, "kubeconfig file; default: in-cluster, else ~/.kube/config (env KUBECONFIG)"),
    "--cluster-id": ("cluster_id", str, "tag of this cluster's instances (env VNODE_CLUSTER_ID)"),
    "--taint": ("taint_value", str, "value of the virtual-kubelet.io/provider taint (default by provider)"),
    "--node-ip": (
        "node_ip",
        str,
        "the node's InternalIP and pods' hostIP; auto: the host's address (env VNODE_NODE_IP, else POD_IP)",
    ),
    "--kubelet-port": ("kubelet_port", int, "the kubelet endpoint port announced on the Node (env KUBELET_PORT)"),
    "--http-address": ("http_address", str, "address of /healthz, /readyz, /metrics"),
    "--http-port": ("http_port", int, "port of /healthz, /readyz, /metrics (env VNODE_HTTP_PORT)"),
    "--status-interval": ("status_interval", float, "seconds between listings of the cloud"),
    "--workers": ("workers", int, "pods reconciled at once"),
    "--orphan-interval": ("orphan_interval", float, "seconds between orphan collections"),
    "--secret-refresh-interval": (
        "secret_refresh_interval",
        float,
        "seconds between reads of each ConfigMap and Secret mounted as a volume (changes reach the files within this)",
    ),
    "--capacity-cpu": ("capacity_cpu", float, "advertised vCPU before the cloud quota bounds it"),
    "--capacity-memory": ("capacity_memory_gib", float, "advertised GiB before the cloud quota bounds it"),
    "--capacity-pods": ("capacity_pods", int, "advertised pods before the cloud quota bounds it"),
    "--profile-configmap": ("profile_configmap", str, "namespace/name of the live profile"),
}


def _all_flags() -> dict[str, tuple[str, Any, str]]:
    """The generic flags, then each built-in provider's own (setting path ``<provider>.<field>``)."""
    flags = dict(FLAGS)
    for found in registry.builtin():
        for flag, own in found.flags.items():
            flags[flag] = (f"{found.name}.{own.field}", own.kind, own.help)
    return flags


def configure(parser: argparse.ArgumentParser) -> None:
    for flag, (path, kind, help_text) in _all_flags().items():
        parser.add_argument(flag, dest=path.replace(".", "__"), type=kind, default=None, help=help_text)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {path: getattr(args, path.replace(".", "__")) for path, _, _ in _all_flags().values()}


async def _main(loaded: settings.Settings) -> None:
    factory = registry.load(loaded.provider)
    async with client.Client(config.load(loaded.kubeconfig)) as kube:
        loaded = await credentials.load(kube, loaded)
        if loaded.node_identity:  # named at start, not as every pod's Secret read refused
            await identity.check(kube, loaded.node_name)
        provider = factory(loaded)
        # The kubelet API's serving key and certificate, removed when the daemon ends (a kill -9 leaves them
        # to the pod's filesystem; every start used to leave one more private key in /tmp).
        certs = tempfile.TemporaryDirectory(prefix="vnode-kubelet-")
        try:
            the_daemon = daemon.Daemon(
                loaded,
                kube,
                provider,
                registry=metrics.process_registry(),
                serve_kubelet=True,
                kubelet_cert_dir=pathlib.Path(certs.name),
            )
            loop = asyncio.get_running_loop()

            def on_signal(sig: signal.Signals) -> None:
                log.info("%s received", sig.name)
                if sig == signal.SIGTERM:
                    the_daemon.terminate()  # the Daemon drains first if this replica is being scaled away
                else:
                    the_daemon.stop()

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
            for sig in early_signals.pending():  # arrived while Python was still importing
                log.info("acting on %s received during start-up", sig.name)
                on_signal(sig)
            trimming = asyncio.create_task(allocator.trim_periodically())
            try:
                await the_daemon.run()
            finally:
                trimming.cancel()
        finally:
            certs.cleanup()
            await provider.close()


GC_THRESHOLDS = (20_000, 20, 20)


def _tune_gc() -> None:
    """Collect cyclic garbage less often than CPython's default (a young collection every 700 allocations).

    A node keeps thousands of long-lived objects (the pod cache, the instances' states) and
    allocates many short-lived ones per pod (watch events, requests, statuses), almost all freed
    by reference counting. At the default thresholds the collector ran so often, and its full
    collections walked the whole cache so often, that they were a large share of a daemon's CPU
    in a 10,000-pod burst (decoding a pod event cost several times more with collections on than
    off, next to 3,000 cached pods). Collections still happen, only less often; the objects alive
    at startup are frozen out of them.
    """
    collector.freeze()
    collector.set_threshold(*GC_THRESHOLDS)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = settings.load(os.environ, _flags(args))
        registry.load(loaded.provider)
        config.load(loaded.kubeconfig)
        eventloop.factory()  # a VNODE_EVENT_LOOP that cannot be had is a setting's error, named before anything starts
    except errors.ConfigError as exc:
        print(f"vnode run: {exc}", file=sys.stderr)
        return 2
    logs.setup(loaded.node_name, level=str(args.log_level).upper())
    _tune_gc()
    try:
        eventloop.run(_main(loaded))
    except (errors.ConfigError, errors.ApiError, ExceptionGroup) as exc:
        cause = _named_failure(exc)
        if cause is None:
            raise  # a bug: its traceback is what helps
        print(f"vnode run: {cause}", file=sys.stderr)
        return 2 if isinstance(cause, errors.ConfigError) else 1
    return 0


def _named_failure(exc: BaseException) -> errors.ConfigError | errors.ApiError | None:
    """The error that stopped the daemon, when it names what is wrong (a setting, or a call the API
    server or the cloud refused: unreachable, forbidden...): one line, not a traceback. Its first
    such cause inside a task group's; None if any cause is something else (a bug)."""
    if isinstance(exc, errors.ConfigError | errors.ApiError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        causes = [_named_failure(inner) for inner in exc.exceptions]
        if causes and all(cause is not None for cause in causes):
            return causes[0]
    return None
