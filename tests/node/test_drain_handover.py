"""At its deadline a leaving replica removes a pod only once the cloud has taken its instance's delete;
what the cloud could not take is handed over with the Node to the surviving replicas."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from tests.node.test_drain import CLUSTER_ID, bound_pod, instance_for, names
from vnode import errors, models
from vnode.kube import client
from vnode.node import drain
from vnode.provider.fake import provider as fake

pytestmark = pytest.mark.cluster


class RefusingCloud(fake.FakeProvider):
    """A cloud whose deletes the account's rate refuses (a wait beyond the client's bound), but those of ``free``."""

    def __init__(self) -> None:
        super().__init__()
        self.free: set[str] = set()

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        if instance_id not in self.free:
            raise errors.Throttled("DeleteContainerGroup: client-side rate limit", code="Throttling.Client",
                                   retry_after=90)  # fmt: skip
        await super().delete(instance_id, grace_seconds=grace_seconds)


async def test_what_the_cloud_could_not_delete_by_the_deadline_is_handed_over_with_the_node(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    """Found by the default soak: at a 3 -> 1 scale-in the leaving replica had 888 instances left at its
    deadline and the account's rate refused most of their deletes; it removed their pods all the same and
    deleted the Node, and 28 instances ran on without a pod for over 3 minutes."""
    cloud = RefusingCloud()
    refused = await instance_for(cloud, node, bound_pod(core, namespace, node, "refused"))
    taken = await instance_for(cloud, node, bound_pod(core, namespace, node, "taken"))
    cloud.free.add(taken.id)
    bound_pod(core, namespace, node, "bare")  # no instance (yet): nothing to wait for
    ghost = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="ghost", namespace=namespace, uid="long-gone"))
    podless = await instance_for(cloud, node, ghost)

    result = await drain.drain(kube, cloud, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 3,
                               force_margin=3)  # fmt: skip

    assert names(core, namespace) == {"refused"}, "only the pod whose instance still runs is kept"
    assert {i.id for i in cloud.instances()} == {refused.id, podless.id}
    assert sorted(result.handed_over) == sorted([f"{namespace}/refused", podless.id])
    assert not result.complete
    assert node in {n.metadata.name for n in core.list_node().items}, "the Node stays, for the takeover"


async def test_a_drain_with_nothing_handed_over_deletes_the_node(
    kube: client.Client, core: k8s.CoreV1Api, namespace: str, node: str
) -> None:
    cloud = RefusingCloud()
    made: list[models.InstanceState] = [await instance_for(cloud, node, bound_pod(core, namespace, node, "web"))]
    cloud.free.update(i.id for i in made)
    result = await drain.drain(kube, cloud, node=node, cluster_id=CLUSTER_ID, deadline=time.monotonic() + 3,
                               force_margin=3)  # fmt: skip
    assert result.handed_over == []
    assert result.node_deleted
    assert cloud.instances() == []
    assert names(core, namespace) == set()
