"""Pod → instance spec for the pod-level fields: dnsPolicy/dnsConfig the kubelet's way, hostAliases,
hostname, and the security context (the container's over the pod's, privileged refused)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vnode import errors, models
from vnode.kube import objects
from vnode.node import spec
from vnode.provider.eci import mapping
from vnode.provider.eci import profile as eci_profile

TARGET = spec.Target(cluster_id="c1", node_name="vn-0", profile=eci_profile.PROFILE, cluster_dns="10.96.0.10")
NO_DNS = spec.Target(cluster_id="c1", node_name="vn-0", profile=eci_profile.PROFILE)
SEARCH = ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(container: dict[str, Any] | None = None, name: str = "web", **fields: Any) -> objects.Pod:
    body = {
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "nginx", **(container or {})}], **fields},
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


def build(p: objects.Pod, target: spec.Target = TARGET) -> models.InstanceSpec:
    return spec.build(p, spec.Sources(), target)


def test_cluster_first_uses_the_cluster_dns_with_the_search_path_and_ndots() -> None:
    built = build(pod())
    assert built.dns_nameservers == ("10.96.0.10",)
    assert built.dns_searches == SEARCH
    assert built.dns_options == (models.DnsOption("ndots", "5"),)


def test_cluster_first_merges_dns_config_like_the_kubelet() -> None:
    config = {
        "nameservers": ["1.1.1.1", "10.96.0.10"],
        "searches": ["example.com"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    built = build(pod(dnsConfig=config))
    assert built.dns_nameservers == ("10.96.0.10", "1.1.1.1")
    assert built.dns_searches == (*SEARCH, "example.com")
    assert built.dns_options == (models.DnsOption("ndots", "2"), models.DnsOption("edns0"))


def test_cluster_first_without_a_cluster_dns_falls_back_to_default() -> None:
    built = build(pod(), NO_DNS)
    assert (built.dns_nameservers, built.dns_searches, built.dns_options) == ((), (), ())


def test_default_has_no_cluster_dns_and_none_is_exactly_the_dns_config() -> None:
    default = build(pod(dnsPolicy="Default"))
    assert (default.dns_nameservers, default.dns_searches, default.dns_options) == ((), (), ())
    config = {"nameservers": ["8.8.8.8"], "searches": ["corp.example"], "options": [{"name": "timeout", "value": "1"}]}
    exact = build(pod(dnsPolicy="None", dnsConfig=config))
    assert exact.dns_nameservers == ("8.8.8.8",)
    assert exact.dns_searches == ("corp.example",)
    assert exact.dns_options == (models.DnsOption("timeout", "1"),)


def test_dns_policy_none_without_dns_config_is_refused() -> None:
    with pytest.raises(errors.InvalidSpec, match="dnsPolicy None needs a dnsConfig"):
        build(pod(dnsPolicy="None"))


def test_host_aliases_and_hostname() -> None:
    aliases = [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}]
    built = build(pod(hostAliases=aliases, hostname="web-0", subdomain="web"))
    assert built.host_aliases == (models.HostAlias("10.1.2.3", ("db", "db.local")),)
    assert built.hostname == "web-0"
    assert build(pod(name="a" * 62 + "-b")).hostname == "a" * 62


def test_the_container_security_context_overrides_the_pods() -> None:
    context = {"runAsUser": 1000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
    own = {
        "securityContext": {"runAsUser": 2000, "capabilities": {"add": ["NET_ADMIN"]}, "readOnlyRootFilesystem": True}
    }
    built = build(pod(own, securityContext=context))
    (app,) = built.containers
    assert app.run_as_user == 2000
    assert app.capabilities_add == ("NET_ADMIN",)
    assert app.read_only_root_filesystem is True
    assert built.sysctls == (models.Sysctl("net.core.somaxconn", "1024"),)
    assert build(pod(securityContext=context)).containers[0].run_as_user == 1000
    assert build(pod()).containers[0].run_as_user is None


def test_the_group_dropped_capabilities_and_privilege_escalation_follow_the_same_rules() -> None:
    own = {"securityContext": {"runAsGroup": 4000, "capabilities": {"drop": ["all", "ALL"]}}}
    (app,) = build(pod(own, securityContext={"runAsGroup": 3000})).containers
    assert (app.run_as_group, app.capabilities_drop, app.allow_privilege_escalation) == (4000, ("ALL",), None)
    (shared,) = build(
        pod({"securityContext": {"allowPrivilegeEscalation": False}}, securityContext={"runAsGroup": 3000})
    ).containers
    assert (shared.run_as_group, shared.allow_privilege_escalation) == (3000, False)
    with pytest.raises(errors.InvalidSpec, match=r"securityContext\.runAsGroup -1 is negative"):
        build(pod({"securityContext": {"runAsGroup": -1}}))


def test_run_as_non_root_is_checked_against_the_uid_like_the_kubelet() -> None:
    """It used to be refused outright, which refused every hardened chart that sets both fields."""
    (app,) = build(pod({"securityContext": {"runAsNonRoot": True}}, securityContext={"runAsUser": 1000})).containers
    assert app.run_as_user == 1000
    (own,) = build(pod({"securityContext": {"runAsNonRoot": True, "runAsUser": 65532}})).containers
    assert own.run_as_user == 65532
    with pytest.raises(errors.InvalidSpec, match=r"container app: .*runAsNonRoot is true and runAsUser is 0"):
        build(pod({"securityContext": {"runAsUser": 0}}, securityContext={"runAsNonRoot": True}))
    with pytest.raises(errors.InvalidSpec, match=r"runAsNonRoot is true without a runAsUser: .* set runAsUser"):
        build(pod(securityContext={"runAsNonRoot": True}))
    (root,) = build(pod({"securityContext": {"runAsNonRoot": False, "runAsUser": 0}})).containers
    assert root.run_as_user == 0, "runAsNonRoot false is no check"


def test_a_privileged_container_is_refused_naming_the_field() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"securityContext\.privileged"):
        build(pod({"securityContext": {"privileged": True}}))


LIFECYCLE = {
    "postStart": {"exec": {"command": ["sh", "-c", "echo up"]}},
    "preStop": {"httpGet": {"path": "/drain", "port": "http", "httpHeaders": [{"name": "X-Drain", "value": "1"}]}},
}


def test_lifecycle_hooks_resolve_named_ports_and_reach_ecis_parameters() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}], "lifecycle": LIFECYCLE}
    (app,) = build(pod(container)).containers
    assert app.post_start == models.Handler(exec_command=("sh", "-c", "echo up"))
    assert app.pre_stop == models.Handler(http_path="/drain", http_port=8080, http_headers=(("X-Drain", "1"),))
    params = mapping.create_params(
        build(pod(container)), region="r", vswitches=["vsw-1"], security_group="sg-1", strategy="VSwitchOrdered"
    )
    assert [params[f"Container.1.LifecyclePostStartHandlerExec.{n}"] for n in (1, 2, 3)] == ["sh", "-c", "echo up"]
    assert (
        params["Container.1.LifecyclePreStopHandlerHttpGetPath"],
        params["Container.1.LifecyclePreStopHandlerHttpGetPort"],
        params["Container.1.LifecyclePreStopHandlerHttpGetScheme"],
    ) == ("/drain", "8080", "HTTP")
    header = "Container.1.LifecyclePreStopHandlerHttpGetHttpHeader.1"
    assert (params[f"{header}.Name"], params[f"{header}.Value"]) == ("X-Drain", "1")


@pytest.mark.parametrize(
    ("hook", "words"),
    [({"sleep": {"seconds": 5}}, "lifecycle.preStop.sleep"), ({"tcpSocket": {"port": "nope"}}, "names no port")],
)
def test_a_hook_vnode_cannot_carry_is_refused(hook: dict[str, Any], words: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=words):
        build(pod({"lifecycle": {"preStop": hook}}))


def test_the_termination_message_fields_reach_ecis_parameters_when_not_the_defaults() -> None:
    def params(container: dict[str, Any]) -> dict[str, str]:
        built = build(pod(container))
        return mapping.create_params(built, region="r", vswitches=["v"], security_group="sg", strategy="VSwitchOrdered")

    custom = params({"terminationMessagePath": "/tmp/why", "terminationMessagePolicy": "FallbackToLogsOnError"})
    assert (custom["Container.1.TerminationMessagePath"], custom["Container.1.TerminationMessagePolicy"]) == (
        "/tmp/why",
        "FallbackToLogsOnError",
    )
    assert not [key for key in params({}) if "TerminationMessage" in key]


STARTUP = {"httpGet": {"path": "/started", "port": 8080}, "periodSeconds": 10, "failureThreshold": 30}


def test_a_startup_probe_delays_liveness_by_its_window_and_gates_readiness_on_eci() -> None:
    """ECI has no startup probe: folded, a slow starter gets the kubelet's 5 minutes before liveness may
    kill it, and is not Ready before /started answers (it used to be refused as unsupported)."""
    liveness = {"httpGet": {"path": "/alive", "port": 8080}, "initialDelaySeconds": 5}
    (app,) = build(pod({"startupProbe": STARTUP, "livenessProbe": liveness})).containers
    assert app.startup_probe is None
    assert app.liveness_probe is not None
    assert app.liveness_probe.http_path == "/alive"
    assert app.liveness_probe.initial_delay_seconds == 300, "0 + 10 s x 30 failures"
    assert app.readiness_probe is not None
    assert app.readiness_probe.http_path == "/started"
    params = mapping.create_params(
        build(pod({"startupProbe": STARTUP, "livenessProbe": liveness})), region="r", vswitches=["vsw-1"],
        security_group="sg-1", strategy="VSwitchOrdered",
    )  # fmt: skip
    assert params["Container.1.LivenessProbe.InitialDelaySeconds"] == "300"
    assert params["Container.1.ReadinessProbe.HttpGet.Path"] == "/started"


def test_a_startup_probe_alone_is_the_liveness_and_the_readiness_probe() -> None:
    (app,) = build(pod({"startupProbe": STARTUP})).containers
    assert app.liveness_probe == app.readiness_probe
    assert app.liveness_probe is not None
    assert (app.liveness_probe.http_path, app.liveness_probe.failure_threshold) == (
        "/started", 30)  # fmt: skip


def test_a_readiness_probe_of_its_own_starts_no_sooner_than_the_startup_probe() -> None:
    readiness = {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 1}
    (app,) = build(
        pod({"startupProbe": {**STARTUP, "initialDelaySeconds": 20}, "readinessProbe": readiness})
    ).containers
    assert app.readiness_probe is not None
    assert app.readiness_probe.tcp_port == 8080
    assert app.readiness_probe.initial_delay_seconds == 20
    assert app.liveness_probe is not None
    assert app.liveness_probe.http_path == "/started", "no liveness: startup's"
    assert app.liveness_probe.initial_delay_seconds == 20
