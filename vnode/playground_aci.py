"""The playground's ACI virtual nodes: a second release of the chart, ``virtual-node-aci``, beside the ECI one.

It runs on ``vnode-host`` like the ECI StatefulSet and talks to the simulator's ACI dialect
(HTTPS with the simulator's own CA): the CA goes into the ConfigMap ``vnode-aci-ca`` that the
chart mounts at ``/etc/vnode/aci-ca`` and names by ``ACI_CA_FILE`` (the process provider binds
it there), the bearer token into the Secret the chart reads ``ACI_TOKEN`` from. Its nodes carry
the taint ``virtual-kubelet.io/provider=azure``: the AKS stories run on them.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CA_CONFIGMAP", "NAME", "RELEASE", "SECRET", "VIRTUAL_NODE", "install", "install_command", "secrets"]

RELEASE = "vnode-aci"
NAME = "virtual-node-aci"
VIRTUAL_NODE = f"{NAME}-0"
CA_CONFIGMAP = "vnode-aci-ca"
SECRET = f"{NAME}-credentials"


def secrets(aci: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ConfigMap with the simulator's CA and the Secret with its token, as manifests to apply."""
    ca = pathlib.Path(aci["ca_file"]).read_text()
    meta = {"namespace": "kube-system", "labels": {"app.kubernetes.io/name": "vnode"}}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CA_CONFIGMAP, **meta}, "data": {"ca.pem": ca}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, **meta},
            "type": "Opaque",
            "stringData": {"token": aci["token"]},
        },
    ]


def install_command(chart: pathlib.Path, values_file: pathlib.Path, aci: Mapping[str, Any]) -> list[str]:
    """``helm upgrade --install`` arguments of the ACI release (the playground's values, then ACI's)."""
    values = {
        "name": NAME,
        "provider": "aci",
        "aci.endpoint": aci["endpoint"],
        "aci.region": aci["location"],
        "aci.subscriptionId": aci["subscription_id"],
        "aci.resourceGroup": aci["resource_group"],
        "aci.caConfigMap": CA_CONFIGMAP,
        "credentials.create": "false",
        "credentials.existingSecret": SECRET,
        "profile.create": "false",  # kube-system/eci-profile belongs to the ECI release
    }
    return ["upgrade", "--install", RELEASE, str(chart), f"--values={values_file}"] + [
        f"--set={key}={value}" for key, value in values.items()
    ]


def install(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    helm: Callable[..., subprocess.CompletedProcess[str]],
    chart: pathlib.Path,
    values_file: pathlib.Path,
    cloud: Mapping[str, Any],
) -> str:
    """Apply the CA and the token, then install the release; an error message, or empty when done."""
    aci = cloud.get("aci")
    if not aci:
        return "the simulated cloud serves no ACI dialect (cloud.json has no aci section)"
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets(aci)})
    applied = kubectl("apply", "-f", "-", input=manifest, check=False)
    if applied.returncode != 0:
        return f"could not apply the ACI CA and token: {applied.stderr.strip()}"
    result = helm(*install_command(chart, values_file, aci))
    if result.returncode != 0:
        return f"helm install of {RELEASE} failed: {result.stderr.strip().splitlines()[-1:]}"
    return ""
