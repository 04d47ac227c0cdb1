"""``fieldRef: status.podIP`` in env: passed on for the cloud to fill in, never resolved to empty.

The spec carries a field reference (the IP is allocated only when the cloud creates the
instance); ECI sends it as ``EnvironmentVar.N.FieldRef.FieldPath``, ACI refuses it by name, the
simulated shell sees the value.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.cloudsim import workloads
from vnode.kube import objects
from vnode.node import spec
from vnode.provider.aci import mapping as aci_mapping
from vnode.provider.eci import mapping

TARGET = spec.Target(cluster_id="c1", node_name="vn-0", node_ip="192.168.0.9")


def pod(env: list[dict[str, Any]], **container: Any) -> objects.Pod:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "env": env, **container}]},
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def test_pod_ip_and_pod_ips_become_a_reference_for_the_cloud() -> None:
    built = spec.build(
        pod([field("POD_IP", "status.podIP"), field("POD_IPS", "status.podIPs")]), spec.Sources(), TARGET
    )
    env = {e.name: e for e in built.containers[0].env}
    assert env["POD_IP"] == models.EnvVar("POD_IP", "", models.FIELD_POD_IP)
    # an instance is single-stack: its IPs are its one IP
    assert env["POD_IPS"] == models.EnvVar("POD_IPS", "", models.FIELD_POD_IP)


def test_host_ip_is_still_the_node_ip() -> None:
    built = spec.build(pod([field("HOST_IP", "status.hostIP")]), spec.Sources(), TARGET)
    assert built.containers[0].env == (models.EnvVar("HOST_IP", "192.168.0.9"),)


def test_a_later_definition_of_the_same_name_wins_either_way() -> None:
    overridden = pod([field("IP", "status.podIP"), {"name": "IP", "value": "fixed"}])
    assert spec.build(overridden, spec.Sources(), TARGET).containers[0].env == (models.EnvVar("IP", "fixed"),)
    referenced = pod([{"name": "IP", "value": "fixed"}, field("IP", "status.podIP")])
    assert spec.build(referenced, spec.Sources(), TARGET).containers[0].env == (
        models.EnvVar("IP", "", models.FIELD_POD_IP),
    )


def test_references_to_the_cloud_filled_var_stay_as_written() -> None:
    # The value is unknown at create: $(POD_IP) is left as Kubernetes leaves an undefined one.
    p = pod(
        [field("POD_IP", "status.podIP"), {"name": "URL", "value": "http://$(POD_IP):80"}],
        args=["--bind=$(POD_IP)"],
    )
    container = spec.build(p, spec.Sources(), TARGET).containers[0]
    assert {e.name: e.value for e in container.env}["URL"] == "http://$(POD_IP):80"
    assert container.args == ("--bind=$(POD_IP)",)


def test_pod_ip_in_a_downward_api_volume_is_refused() -> None:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "containers": [{"name": "app", "image": "nginx"}],
            "volumes": [
                {"name": "d", "downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}
            ],
        },
    }
    with pytest.raises(errors.InvalidSpec, match=r"status\.podIP.*env only"):
        spec.build(msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod), spec.Sources(), TARGET)


def instance(*env: models.EnvVar) -> models.InstanceSpec:
    return models.InstanceSpec(
        name="web",
        client_token="uid-1",
        containers=(models.ContainerSpec(name="app", image="nginx", env=env),),
        init_containers=(models.ContainerSpec(name="init", image="busybox", env=env),),
        cpu=2,
        memory_gib=4,
    )


def test_eci_sends_a_field_reference_instead_of_a_value() -> None:
    params = mapping.create_params(
        instance(models.EnvVar("A", "1"), models.EnvVar("POD_IP", field_path=models.FIELD_POD_IP)),
        region="r",
        vswitches=("vsw-a",),
        security_group="sg",
        strategy="VSwitchOrdered",
    )
    for prefix in ("Container.1", "InitContainer.1"):
        assert params[f"{prefix}.EnvironmentVar.1.Key"] == "A"
        assert params[f"{prefix}.EnvironmentVar.1.Value"] == "1"
        assert params[f"{prefix}.EnvironmentVar.2.Key"] == "POD_IP"
        assert params[f"{prefix}.EnvironmentVar.2.FieldRef.FieldPath"] == "status.podIP"
        assert f"{prefix}.EnvironmentVar.2.Value" not in params


def test_aci_refuses_a_field_reference_naming_the_var_and_field() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"env POD_IP from fieldRef status\.podIP"):
        aci_mapping.group_body(instance(models.EnvVar("POD_IP", field_path=models.FIELD_POD_IP)), location="westeurope")
    body = aci_mapping.group_body(instance(models.EnvVar("A", "1")), location="westeurope")
    assert body["properties"]["containers"][0]["properties"]["environmentVariables"] == [{"name": "A", "value": "1"}]


def test_the_simulated_shell_shows_the_env() -> None:
    env = {"POD_IP": "10.0.0.7", "A": "x y"}
    result = workloads.run_shell(["sh", "-c", "echo $POD_IP ${A} '$A'; printenv POD_IP"], env=env)
    assert result is not None
    assert result.output == ("10.0.0.7 x y $A", "10.0.0.7")
    assert workloads.run_shell(["env"], env=env) == workloads.ShellResult(("POD_IP=10.0.0.7", "A=x y"), 0, 0.0)
    missing = workloads.run_shell(["printenv", "NOPE"], env=env)
    assert missing is not None
    assert missing.exit_code == 1
