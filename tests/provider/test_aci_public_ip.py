"""The ACI provider's public IP with a DNS name label against the simulator: the group gets it, the
state carries the address and name to write back, and a label another group holds fails the pod
with ACI's reason (until that group is deleted)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.cloudsim.conftest import Sim
from tests.provider.test_aci import aci_sim, provider, sim, spec
from vnode import errors, models
from vnode.provider.aci import mapping
from vnode.provider.aci import provider as aci

__all__ = ["aci_sim", "provider", "sim"]  # the fixtures, imported to be used here


def labelled(name: str, label: str) -> models.InstanceSpec:
    plain = spec(name, annotations={mapping.DNS_NAME_LABEL: label})
    (app,) = plain.containers
    return dataclasses.replace(plain, containers=(dataclasses.replace(app, ports=(models.Port(80),)),))


async def test_a_labelled_group_has_a_public_ip_and_a_taken_label_fails_naming_it(
    sim: Sim, provider: aci.AciProvider
) -> None:
    made = await provider.create(labelled("web", "web-demo"))
    assert made.annotations[mapping.FQDN] == "web-demo.westeurope.azurecontainer.io"
    assert made.annotations[mapping.PUBLIC_IP] == made.ip
    with pytest.raises(errors.InvalidSpec, match=r"DnsNameLabelAlreadyTaken.*'web-demo'.*not available"):
        await provider.create(labelled("copy", "web-demo"))
    await provider.delete(made.id, grace_seconds=0)
    again = await provider.create(labelled("copy", "web-demo"))
    assert again.annotations[mapping.FQDN] == "web-demo.westeurope.azurecontainer.io"
