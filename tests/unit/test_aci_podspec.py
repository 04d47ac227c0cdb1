"""The pod-spec fields ACI maps, as the container group's PUT body (the ARM JSON the official SDK sends)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from vnode import errors, models
from vnode.provider.aci import mapping


def _spec(**fields: Any) -> models.InstanceSpec:
    return models.InstanceSpec(
        name="web",
        client_token="uid-web",
        containers=(models.ContainerSpec(name="app", image="registry.private.example/team/nginx:1"),),
        cpu=1,
        memory_gib=2,
        **fields,
    )


def _props(spec: models.InstanceSpec) -> dict[str, Any]:
    props: dict[str, Any] = mapping.group_body(spec, location="westeurope")["properties"]
    return props


def test_registry_credentials_are_image_registry_credentials() -> None:
    logins = (
        models.RegistryCredential("registry.private.example", "robot", "s3cret"),
        models.RegistryCredential("docker.io", "me", "hub-token"),
    )
    assert _props(_spec(registry_credentials=logins))["imageRegistryCredentials"] == [
        {"server": "registry.private.example", "username": "robot", "password": "s3cret"},
        {"server": "index.docker.io", "username": "me", "password": "hub-token"},
    ]


def test_without_credentials_the_body_has_none() -> None:
    assert "imageRegistryCredentials" not in _props(_spec())


def test_the_resolver_is_dns_config_with_searches_and_options_as_one_string_each() -> None:
    spec = _spec(
        dns_nameservers=("10.96.0.10", "1.1.1.1"),
        dns_searches=("ns.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        dns_options=(models.DnsOption("ndots", "5"), models.DnsOption("edns0")),
    )
    assert _props(spec)["dnsConfig"] == {
        "nameServers": ["10.96.0.10", "1.1.1.1"],
        "searchDomains": "ns.svc.cluster.local svc.cluster.local cluster.local",
        "options": "ndots:5 edns0",
    }
    assert _props(_spec(dns_nameservers=("1.1.1.1",)))["dnsConfig"] == {"nameServers": ["1.1.1.1"]}


def test_the_clouds_resolver_sends_no_dns_config() -> None:
    assert "dnsConfig" not in _props(_spec())


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"dns_searches": ("corp.example",)}, "spec.dnsConfig.searches"),
        ({"dns_options": (models.DnsOption("ndots", "2"),)}, "spec.dnsConfig.options"),
    ],
)
def test_searches_or_options_without_a_name_server_are_refused_naming_the_field(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(errors.InvalidSpec, match=f"^{re.escape(named)}: ACI's dnsConfig needs a name server"):
        mapping.group_body(_spec(**fields), location="westeurope")


def test_run_as_user_and_added_capabilities_are_the_containers_security_context() -> None:
    app = models.ContainerSpec(name="app", image="nginx", run_as_user=1000, capabilities_add=("NET_ADMIN",))
    init = models.ContainerSpec(name="init", image="busybox", run_as_user=0)
    plain = models.ContainerSpec(name="side", image="busybox", read_only_root_filesystem=True)
    props = _props(dataclasses.replace(_spec(), containers=(app, plain), init_containers=(init,)))
    first, second = props["containers"]
    assert first["properties"]["securityContext"] == {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}
    assert "securityContext" not in second["properties"]  # readOnlyRootFilesystem is not mapped on ACI
    assert props["initContainers"][0]["properties"]["securityContext"] == {"runAsUser": 0}


def test_group_dropped_capabilities_and_privilege_escalation_are_mapped_too() -> None:
    app = models.ContainerSpec(
        name="app",
        image="nginx",
        run_as_user=1000,
        run_as_group=3000,
        capabilities_add=("NET_BIND_SERVICE",),
        capabilities_drop=("ALL",),
        allow_privilege_escalation=False,
    )
    (container,) = _props(dataclasses.replace(_spec(), containers=(app,)))["containers"]
    assert container["properties"]["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 3000,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "allowPrivilegeEscalation": False,
    }


def _probed(**probes: models.Probe) -> models.InstanceSpec:
    app = models.ContainerSpec(name="app", image="nginx", **probes)
    return models.InstanceSpec(name="web", client_token="uid-web", containers=(app,), cpu=1, memory_gib=2)


def test_a_tcp_probe_is_refused_not_dropped() -> None:
    """ACI has exec and httpGet probes only; a tcpSocket probe used to be left out silently, so the
    container ran unchecked."""
    with pytest.raises(errors.InvalidSpec, match=r"container app: readinessProbe.tcpSocket: ACI has no TCP probe"):
        mapping.group_body(_probed(readiness_probe=models.Probe(tcp_port=5432)), location="westeurope")
    http = models.Probe(http_path="/healthz", http_port=8080, initial_delay_seconds=300)
    (container,) = _props(_probed(liveness_probe=http))["containers"]
    assert container["properties"]["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080, "scheme": "http"}
    assert container["properties"]["livenessProbe"]["initialDelaySeconds"] == 300
