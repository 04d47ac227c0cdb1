"""``vnode run``: parse flags over the field's environment variables, then run the daemon until SIGTERM.

Every flag is optional and overrides its environment variable (``--node-name`` over
``VNODE_NODE_NAME`` over ``POD_NAME``; ``--eci-vswitch`` over ``ECI_VSWITCH`` ...). An invalid
setting stops the command before anything starts, with one line naming it, and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc as collector  # the interpreter's; vnode.gc is the instance collector
import logging
import os
import signal
import sys
import time
from typing import Any

from vnode import daemon, early_signals, errors, gc, settings
from vnode.kube import api, client, config
from vnode.node import drain
from vnode.observability import logs
from vnode.provider import base, registry

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)

# flag -> (setting path, type, help). The environment variable is named in the help.
FLAGS: dict[str, tuple[str, Any, str]] = {
    "--node-name": ("node_name", str, "the Node's name (env VNODE_NODE_NAME, else POD_NAME)"),
    "--provider": ("provider", str, "the cloud: eci, aci, or a vnode.providers entry point (env VNODE_PROVIDER)"),
    "--kubeconfig": ("kubeconfig", str, "kubeconfig file; default: in-cluster, else ~/.kube/config (env KUBECONFIG)"),
    "--cluster-id": ("cluster_id", str, "tag of this cluster's instances (env VNODE_CLUSTER_ID)"),
    "--taint": ("taint_value", str, "value of the virtual-kubelet.io/provider taint (default by provider)"),
    "--node-ip": ("node_ip", str, "the node's InternalIP and pods' hostIP (env VNODE_NODE_IP, else POD_IP)"),
    "--kubelet-port": ("kubelet_port", int, "the kubelet endpoint port announced on the Node (env KUBELET_PORT)"),
    "--http-address": ("http_address", str, "address of /healthz, /readyz, /metrics"),
    "--http-port": ("http_port", int, "port of /healthz, /readyz, /metrics (env VNODE_HTTP_PORT)"),
    "--status-interval": ("status_interval", float, "seconds between listings of the cloud"),
    "--workers": ("workers", int, "pods reconciled at once"),
    "--orphan-interval": ("orphan_interval", float, "seconds between orphan collections"),
    "--capacity-cpu": ("capacity_cpu", float, "advertised vCPU before the cloud quota bounds it"),
    "--capacity-memory": ("capacity_memory_gib", float, "advertised GiB before the cloud quota bounds it"),
    "--capacity-pods": ("capacity_pods", int, "advertised pods before the cloud quota bounds it"),
    "--profile-configmap": ("profile_configmap", str, "namespace/name of the live profile"),
    "--eci-region": ("eci.region", str, "env ECI_REGION"),
    "--eci-endpoint": ("eci.endpoint", str, "host:port of the ECI API (env ECI_ENDPOINT)"),
    "--eci-vswitch": ("eci.vswitches", str, "vSwitch IDs, comma-separated, in failover order (env ECI_VSWITCH)"),
    "--eci-security-group": ("eci.security_group", str, "env ECI_SECURITY_GROUP"),
    "--eci-credentials-secret": (
        "eci.credentials_secret",
        str,
        "namespace/name of a Secret with access-key-id and access-key-secret (env ECI_CREDENTIALS_SECRET)",
    ),
    "--aci-region": ("aci.region", str, "env ACI_REGION"),
    "--aci-endpoint": ("aci.endpoint", str, "base URL of the ARM API (env ACI_ENDPOINT)"),
    "--aci-resource-group": ("aci.resource_group", str, "env ACI_RESOURCE_GROUP"),
    "--aci-subscription-id": ("aci.subscription_id", str, "env ACI_SUBSCRIPTION_ID"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    for flag, (path, kind, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=path.replace(".", "__"), type=kind, default=None, help=help_text)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {path: getattr(args, path.replace(".", "__")) for path, _, _ in FLAGS.values()}


async def _credentials(kube: client.Client, loaded: settings.Settings) -> settings.Settings:
    """Fill the ECI access keys from the Secret named by ``ECI_CREDENTIALS_SECRET``, if any."""
    ref = loaded.eci.credentials_secret
    if not ref or (loaded.eci.access_key and loaded.eci.secret_key):
        return loaded
    namespace, _, name = ref.partition("/")
    try:
        secret = await api.read(kube, api.secrets(namespace), name)
    except errors.ApiError as exc:
        raise errors.ConfigError(f"ECI_CREDENTIALS_SECRET={ref!r}: cannot read it ({exc.message})") from exc
    try:
        key_id = base64.b64decode(secret.data["access-key-id"]).decode()
        key_secret = base64.b64decode(secret.data["access-key-secret"]).decode()
    except KeyError as exc:
        raise errors.ConfigError(f"ECI_CREDENTIALS_SECRET={ref!r}: no key {exc.args[0]}") from exc
    eci = loaded.eci.model_copy(update={"access_key": key_id, "secret_key": key_secret})
    return loaded.model_copy(update={"eci": eci})


async def _main(loaded: settings.Settings) -> None:
    factory = registry.load(loaded.provider)
    async with client.Client(config.load(loaded.kubeconfig)) as kube:
        loaded = await _credentials(kube, loaded)
        provider = factory(loaded)
        try:
            the_daemon = daemon.Daemon(loaded, kube, provider, serve_kubelet=True)
            task = asyncio.create_task(the_daemon.run())
            loop = asyncio.get_running_loop()
            stopping: list[asyncio.Task[None]] = []

            def on_signal(sig: signal.Signals) -> None:
                if stopping:
                    return
                received_at = time.monotonic()
                stopping.append(asyncio.create_task(_stop(the_daemon, task, kube, provider, sig, received_at)))

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
            for sig in early_signals.pending():  # arrived while Python was still importing
                log.info("acting on %s received during start-up", sig.name)
                on_signal(sig)
            gc_task = _start_gc(the_daemon, kube, provider, loaded)
            try:
                await task
            except asyncio.CancelledError:
                log.info("stopped by signal; the node's pods keep running in the cloud unless it was drained")
            finally:
                if gc_task is not None:
                    gc_task.cancel()
                for stop in stopping:
                    await asyncio.gather(stop, return_exceptions=True)
        finally:
            await provider.close()


async def _stop(
    the_daemon: daemon.Daemon,
    task: asyncio.Task[None],
    kube: client.Client,
    provider: base.Provider,
    sig: signal.Signals,
    received_at: float,
) -> None:
    """SIGTERM: drain the node first if the StatefulSet is removing this replica (a scale-in or an
    uninstall), then stop. A restart of the same ordinal, or SIGINT, stops without draining."""
    try:
        if sig == signal.SIGTERM:
            await drain.on_termination(
                kube,
                provider,
                node=the_daemon.config.node_name,
                cluster_id=the_daemon.config.cluster_id,
                namespace=os.environ.get("POD_NAMESPACE", ""),
                pod_name=os.environ.get("POD_NAME", ""),
                grace=drain.grace_seconds(),
                received_at=received_at,
                before_node_delete=the_daemon.stop_node,
            )
    except Exception:
        log.exception("drain failed; the replacement or `vnode gc` will collect what is left")
    finally:
        task.cancel()


def _start_gc(
    the_daemon: daemon.Daemon, kube: client.Client, provider: base.Provider, loaded: settings.Settings
) -> asyncio.Task[None] | None:
    """Replica 0 of a StatefulSet also deletes the instances of nodes that are gone for good, and
    drains the nodes of scaled-away replicas that died before they could drain themselves."""
    parsed = drain.ordinal_of(os.environ.get("POD_NAME", ""))
    if parsed is None or parsed[1] != 0:
        return None
    namespace = os.environ.get("POD_NAMESPACE", "")
    abandoned = gc.Abandoned(kube, namespace, parsed[0]) if namespace else None
    return asyncio.create_task(
        gc.collect_periodically(
            kube,
            provider,
            loaded.cluster_id,
            interval=loaded.orphan_interval,
            should_run=the_daemon.ownership.holds,
            abandoned=abandoned,
        )
    )


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
    except errors.ConfigError as exc:
        print(f"vnode run: {exc}", file=sys.stderr)
        return 2
    logs.setup(loaded.node_name, level=str(args.log_level).upper())
    _tune_gc()
    try:
        asyncio.run(_main(loaded))
    except errors.ConfigError as exc:
        print(f"vnode run: {exc}", file=sys.stderr)
        return 2
    return 0
