"""A kubelet's own API calls for pods that KWOK runs: the ``kwok+tokens`` and ``kwok+kubelet`` targets.

KWOK patches a pod's status and does nothing else. A kubelet, and so any virtual kubelet that
behaves as one, also requests a token for each pod that mounts one (a TokenRequest as its
node, bound to the pod) and records the pod's Events (Pulling, Pulled, Created, Started),
paced at the kubelet's 50 a second with bursts of 100 per node. This process makes exactly
those calls for KWOK's pods, with vnode's own code for them (``vnode.node.tokens`` with its
node's catch-up gate, ``vnode.node.events``), and nothing else: no cloud, no status.

Run beside KWOK on the same control plane, it measures what the kubelet's calls cost the
API server and etcd, apart from any virtual kubelet's own work. With ``--no-events`` (the
``kwok+tokens`` target) it makes the TokenRequests alone: the one call a pod cannot start
without (its token is in its container), so what they cost is the least a node that gives its
pods their tokens adds to KWOK's, and the throughput it allows is a ceiling for any such node on
this machine (Events can wait; a kubelet's trail its pods in a burst). With ``--as-account``
(``kwok+tokens-sa``) it asks as its own ServiceAccount instead of as the node: no Node authorizer,
no NodeRestriction, so no request is refused while the API server catches up with a new pod, and
each pod costs exactly one TokenRequest, the cheapest way to give it its token. Its own CPU is
reported apart, as the simulated cloud's is.

    python -m bench.kubelet_calls --kubeconfig=K --namespace=bench --nodes=kwok-bench-0,kwok-bench-1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import sys

from vnode import errors
from vnode.kube import api, client, config, identity, objects
from vnode.node import catchup, events, tokens

log = logging.getLogger("bench.kubelet_calls")

AUDIENCE = ""  # the API server's own audience, as a projected service-account token without one
SECONDS = 3607  # the kubelet's default for the projected service-account token


def pod_events(pod: objects.Pod) -> list[events.Event]:
    """The four Events a kubelet records for a pod that starts: for each container, its image pulled,
    the container created and started."""
    out = []
    for c in pod.spec.containers:
        out += [
            events.Event("Pulling", f'Pulling image "{c.image}"', container=c.name),
            events.Event("Pulled", f'Successfully pulled image "{c.image}"', container=c.name),
            events.Event("Created", f"Created container {c.name}", container=c.name),
            events.Event("Started", f"Started container {c.name}", container=c.name),
        ]
    return out


class Node:
    """One node's kubelet calls: its tokens (as the node, held while the API server lags) and Events."""

    def __init__(self, kube: client.Client, name: str, *, record_events: bool = True, as_node: bool = True) -> None:
        self.as_node = identity.as_node(kube, name) if as_node else kube
        self.record_events = record_events
        self.gate = catchup.Gate()
        self.recorder = events.Recorder(kube, node_name=name, clock=lambda: datetime.datetime.now(datetime.UTC))

    async def started(self, pod: objects.Pod) -> None:
        """The calls for a pod the node starts: its token first (the container needs it), then its Events."""
        try:
            while tokens.token_volumes(pod):
                try:
                    await tokens.request(self.as_node, pod, AUDIENCE, SECONDS, gate=self.gate)
                    break
                except errors.Unavailable as exc:
                    await asyncio.sleep(exc.retry_after or 1.0)
        except Exception:
            log.exception("no token for %s", pod.key)
        for event in pod_events(pod) if self.record_events else ():
            self.recorder.post(pod, event)


async def serve(kube: client.Client, namespace: str, nodes: dict[str, Node]) -> None:
    """Make the kubelet's calls for each pod created in ``namespace`` bound to one of ``nodes``, until cancelled."""
    pods = api.Resource(f"/api/v1/namespaces/{namespace}/pods", objects.Pod)
    seen: set[str] = set()
    work: set[asyncio.Task[None]] = set()

    def start(pod: objects.Pod) -> None:
        node = nodes.get(pod.spec.node_name)
        if node is None or pod.metadata.uid in seen:
            return
        seen.add(pod.metadata.uid)
        task = asyncio.create_task(node.started(pod))
        work.add(task)
        task.add_done_callback(work.discard)

    async def listed() -> str:
        """The pods there already (at the start, or created while a watch was gone), then where to watch from."""
        listing = await api.list_all(kube, pods)
        for pod in listing.items:
            start(pod)
        return listing.metadata.resource_version

    version = await listed()
    while True:
        try:
            async for kind, pod in api.watch(kube, pods, resource_version=version):
                version = pod.metadata.resource_version or version
                if kind == "ADDED":
                    start(pod)
        except errors.Gone:
            version = await listed()
        except errors.Unavailable as exc:
            log.warning("watch ended: %s", exc)
            await asyncio.sleep(0.5)


async def _run(kubeconfig: str, namespace: str, names: list[str], record_events: bool, as_node: bool) -> None:
    async with client.Client(config.load(kubeconfig), field_manager="kubelet-calls") as kube:
        nodes = {name: Node(kube, name, record_events=record_events, as_node=as_node) for name in names}
        await serve(kube, namespace, nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--nodes", required=True, help="the KWOK nodes, comma-separated")
    parser.add_argument("--no-events", action="store_true", help="the TokenRequests alone (kwok+tokens)")
    parser.add_argument(
        "--as-account", action="store_true", help="request tokens as this process's own account, not as the node"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _run(args.kubeconfig, args.namespace, args.nodes.split(","), not args.no_events, not args.as_account)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
