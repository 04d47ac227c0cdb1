"""ECI's pod-level fields through the official SDK: DnsConfig, HostAliases, the pod's sysctls and a
container's SecurityContext are stored and described back; what ECI does not allow (a capability
other than NET_ADMIN/NET_RAW, a host-level sysctl, a fourth name server) is refused naming the
parameter, and nothing is created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import exceptions as tea_exceptions

from tests.cloudsim.conftest import Sim, container, create_request


def describe(sim: Sim, eci: Client, group_id: str) -> Any:
    request = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    (group,) = eci.describe_container_groups(request).body.container_groups
    return group


def secured(*capabilities: str, user: int | None = 1000) -> Any:
    return m.CreateContainerGroupRequestContainerSecurityContext(
        capability=m.CreateContainerGroupRequestContainerSecurityContextCapability(add=list(capabilities)),
        run_as_user=user,
        read_only_root_filesystem=True,
    )


def test_dns_host_aliases_sysctls_and_security_context_are_described(sim: Sim, eci: Client) -> None:
    request = create_request(
        sim,
        "fields",
        container("app", "nginx", security_context=secured("NET_ADMIN")),
        dns_config=m.CreateContainerGroupRequestDnsConfig(
            name_server=["10.96.0.10", "1.1.1.1"],
            search=["ns.svc.cluster.local", "example.com"],
            option=[
                m.CreateContainerGroupRequestDnsConfigOption(name="ndots", value="5"),
                m.CreateContainerGroupRequestDnsConfigOption(name="edns0"),
            ],
        ),
        host_aliase=[m.CreateContainerGroupRequestHostAliase(ip="10.1.2.3", hostname=["db", "db.local"])],
        security_context=m.CreateContainerGroupRequestSecurityContext(
            sysctl=[m.CreateContainerGroupRequestSecurityContextSysctl(name="net.core.somaxconn", value="1024")]
        ),
        host_name="web-0",
    )
    group_id = eci.create_container_group(request).body.container_group_id
    group = describe(sim, eci, group_id)
    assert group.dns_config.name_servers == ["10.96.0.10", "1.1.1.1"]
    assert group.dns_config.searches == ["ns.svc.cluster.local", "example.com"]
    assert [(o.name, o.value) for o in group.dns_config.options] == [("ndots", "5"), ("edns0", "")]
    assert [(a.ip, a.hostnames) for a in group.host_aliases] == [("10.1.2.3", ["db", "db.local"])]
    assert [(s.name, s.value) for s in group.eci_security_context.sysctls] == [("net.core.somaxconn", "1024")]
    context = group.containers[0].security_context
    assert context.run_as_user == 1000
    assert context.read_only_root_filesystem is True
    assert context.capability.adds == ["NET_ADMIN"]


def test_a_plain_group_has_no_dns_config_nor_aliases(sim: Sim, eci: Client) -> None:
    group = describe(sim, eci, eci.create_container_group(create_request(sim, "plain")).body.container_group_id)
    assert not group.host_aliases
    assert group.dns_config is None or not group.dns_config.name_servers
    assert group.containers[0].security_context.run_as_user is None
    assert not group.containers[0].security_context.capability.adds


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"container": [container("app", "nginx", security_context=secured("SYS_ADMIN"))]}, "Capability.Add.1"),
        (
            {
                "security_context": m.CreateContainerGroupRequestSecurityContext(
                    sysctl=[m.CreateContainerGroupRequestSecurityContextSysctl(name="kernel.panic", value="1")]
                )
            },
            "SecurityContext.Sysctl.1.Name",
        ),
        (
            {
                "dns_config": m.CreateContainerGroupRequestDnsConfig(
                    name_server=["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]
                )
            },
            "DnsConfig.NameServer",
        ),
    ],
)
def test_what_eci_does_not_allow_is_refused(sim: Sim, eci: Client, fields: dict[str, Any], parameter: str) -> None:
    request = create_request(sim, "refused", *fields.pop("container", []), **fields)
    with pytest.raises(tea_exceptions.ClientException) as caught:
        eci.create_container_group(request)
    assert caught.value.code == "InvalidParameter"
    assert parameter in caught.value.message
    assert sim.totals()["live"] == 0


def credential(server: str) -> Any:
    return m.CreateContainerGroupRequestImageRegistryCredential(server=server, user_name="alice", password="pw")


@pytest.mark.parametrize(
    ("logins", "status"),
    [
        ([credential("registry.private.example")], "Running"),
        ([], "Pending"),
        ([credential("other.example")], "Pending"),
    ],
)
def test_a_private_image_needs_a_credential_for_its_registry(
    sim: Sim, eci: Client, logins: list[Any], status: str
) -> None:
    app = container("app", "registry.private.example/team/nginx:1")
    request = create_request(sim, "private", app, image_registry_credential=logins or None)
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(10)
    group = describe(sim, eci, group_id)
    assert group.status == status
    if status == "Pending":  # ECI pulls again, with back-off, until its maximum pending time
        assert group.containers[0].current_state.reason in ("ErrImagePull", "ImagePullBackOff")


def raw_container(sim: Sim, group_id: str) -> dict[str, Any]:
    """The container as DescribeContainerGroups sends it (the SDK's response model has no lifecycle fields)."""
    status, body = sim.raw(
        "DescribeContainerGroups", {"RegionId": sim.region, "ContainerGroupIds": json.dumps([group_id])}
    )
    assert status == 200, body
    return dict(body["ContainerGroups"][0]["Containers"][0])


def delete(sim: Sim, eci: Client, group_id: str) -> None:
    eci.delete_container_group(m.DeleteContainerGroupRequest(region_id=sim.region, container_group_id=group_id))


def test_lifecycle_hooks_are_described_and_post_start_runs_at_start(sim: Sim, eci: Client) -> None:
    app = container(
        "app",
        "nginx",
        port=[m.CreateContainerGroupRequestContainerPort(port=8080, protocol="TCP")],
        lifecycle_post_start_handler_exec=["sh", "-c", "echo started"],
        lifecycle_pre_stop_handler_http_get_path="/drain",
        lifecycle_pre_stop_handler_http_get_port=8080,
        lifecycle_pre_stop_handler_http_get_scheme="HTTP",
        lifecycle_pre_stop_handler_http_get_http_header=[
            m.CreateContainerGroupRequestContainerLifecyclePreStopHandlerHttpGetHttpHeader(name="X-Drain", value="1")
        ],
    )
    group_id = eci.create_container_group(create_request(sim, "hooks", app)).body.container_group_id
    described = raw_container(sim, group_id)
    assert described["LifecyclePostStartHandlerExecs"] == ["sh", "-c", "echo started"]
    assert (
        described["LifecyclePreStopHandlerHttpGetPath"],
        described["LifecyclePreStopHandlerHttpGetPort"],
        described["LifecyclePreStopHandlerHttpGetScheme"],
    ) == ("/drain", 8080, "HTTP")
    assert described["LifecyclePreStopHandlerHttpGetHttpHeaders"] == [{"Name": "X-Drain", "Value": "1"}]
    sim.advance(10)
    group = describe(sim, eci, group_id)
    assert group.status == "Running"
    assert "PostStartHook" in [e.reason for e in group.events]


@pytest.mark.parametrize(("policy", "status"), [("Always", "Running"), ("Never", "Failed")])
def test_a_failed_post_start_hook_kills_the_container_which_restarts_per_its_policy(
    sim: Sim, eci: Client, policy: str, status: str
) -> None:
    """The kubelet's way: FailedPostStartHook, the container killed (137), then restarted with the
    crash-loop back-off, or, under Never, the instance Failed."""
    app = container("app", "nginx", lifecycle_post_start_handler_exec=["sh", "-c", "exit 1"])
    request = create_request(sim, "bad-hook", app, restart_policy=policy)
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(0.5)
    group = describe(sim, eci, group_id)
    assert group.status == status
    reasons = [e.reason for e in group.events]
    assert reasons.index("FailedPostStartHook") < reasons.index("Killing")
    (app_status,) = group.containers
    if policy == "Never":
        assert app_status.current_state.exit_code == 137
        return
    assert app_status.current_state.reason == "CrashLoopBackOff"
    assert app_status.previous_state.exit_code == 137
    sim.advance(1)
    assert describe(sim, eci, group_id).containers[0].restart_count == 1


@pytest.mark.parametrize(
    ("hook_seconds", "grace", "held", "reason"), [(5, 30, 5, "PreStopHook"), (60, 4, 4, "FailedPreStopHook")]
)
def test_a_pre_stop_hook_holds_the_instance_terminating_at_most_the_grace_period(
    sim: Sim, eci: Client, hook_seconds: int, grace: int, held: int, reason: str
) -> None:
    app = container("app", "nginx", lifecycle_pre_stop_handler_exec=["sh", "-c", f"sleep {hook_seconds}"])
    request = create_request(sim, "drain", app, termination_grace_period_seconds=grace)
    group_id = eci.create_container_group(request).body.container_group_id
    sim.advance(10)
    delete(sim, eci, group_id)
    group = describe(sim, eci, group_id)
    assert group.status == "Terminating"
    assert reason in [e.reason for e in group.events]
    sim.advance(held - 1)
    assert describe(sim, eci, group_id).status == "Terminating"
    sim.advance(2)
    request_ids = m.DescribeContainerGroupsRequest(region_id=sim.region, container_group_ids=json.dumps([group_id]))
    assert eci.describe_container_groups(request_ids).body.container_groups == []


def test_a_hook_with_two_handlers_is_refused_naming_it(sim: Sim, eci: Client) -> None:
    status, body = sim.raw(
        "CreateContainerGroup",
        {
            "RegionId": sim.region,
            "ContainerGroupName": "bad-hook",
            "SecurityGroupId": sim.info["security_group_id"],
            "VSwitchId": sim.vswitches[0]["id"],
            "Container.1.Name": "app",
            "Container.1.Image": "nginx",
            "Container.1.LifecyclePreStopHandlerExec.1": "true",
            "Container.1.LifecyclePreStopHandlerTcpSocketPort": "80",
        },
    )
    assert status == 400, body
    assert "Container.1.LifecyclePreStopHandler" in body["Message"]
    assert sim.totals()["live"] == 0


@pytest.mark.parametrize(("policy", "message"), [("FallbackToLogsOnError", "starting\nboom"), ("File", "")])
def test_a_failed_containers_log_tail_is_its_termination_message_under_fallback_to_logs(
    sim: Sim, eci: Client, policy: str, message: str
) -> None:
    app = container(
        "job",
        "busybox",
        "sh",
        "-c",
        "echo starting; echo boom; exit 3",
        termination_message_path="/tmp/why",
        termination_message_policy=policy,
    )
    request = create_request(sim, "job", app, restart_policy="Never")
    group_id = eci.create_container_group(request).body.container_group_id
    described = raw_container(sim, group_id)
    assert (described["TerminationMessagePath"], described["TerminationMessagePolicy"]) == ("/tmp/why", policy)
    sim.advance(20)
    group = describe(sim, eci, group_id)
    assert group.status == "Failed"
    state = group.containers[0].current_state
    assert (state.exit_code, state.message) == (3, message)


def test_probes_are_described_as_given(sim: Sim, eci: Client) -> None:
    liveness = m.CreateContainerGroupRequestContainerLivenessProbe(
        exec=m.CreateContainerGroupRequestContainerLivenessProbeExec(command=["cat", "/alive"]),
        initial_delay_seconds=60, period_seconds=5, failure_threshold=12,
    )  # fmt: skip
    readiness = m.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=m.CreateContainerGroupRequestContainerReadinessProbeHttpGet(path="/ready", port=8080, scheme="HTTP"),
        success_threshold=2,
    )
    request = create_request(sim, "probed", container("app", liveness_probe=liveness, readiness_probe=readiness))
    group = describe(sim, eci, eci.create_container_group(request).body.container_group_id)
    alive, ready = group.containers[0].liveness_probe, group.containers[0].readiness_probe
    assert (alive.execs, alive.initial_delay_seconds, alive.period_seconds, alive.failure_threshold) == (
        ["cat", "/alive"], 60, 5, 12)  # fmt: skip
    assert (ready.http_get.path, ready.http_get.port, ready.success_threshold, ready.timeout_seconds) == (
        "/ready", 8080, 2, 1)  # fmt: skip
    assert describe(sim, eci, eci.create_container_group(create_request(sim, "plain")).body.container_group_id
                    ).containers[0].liveness_probe is None  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        (
            {"LivenessProbe.Exec.Command.1": "true", "LivenessProbe.SuccessThreshold": "2"},
            "LivenessProbe.SuccessThreshold",
        ),
        ({"ReadinessProbe.Exec.Command.1": "true", "ReadinessProbe.TcpSocket.Port": "80"}, "ReadinessProbe"),
        ({"ReadinessProbe.PeriodSeconds": "5"}, "ReadinessProbe"),
        ({"LivenessProbe.TcpSocket.Port": "80", "LivenessProbe.PeriodSeconds": "0"}, "LivenessProbe.PeriodSeconds"),
    ],
)
def test_a_probe_eci_would_refuse_is_refused_naming_it(sim: Sim, fields: dict[str, str], parameter: str) -> None:
    status, body = sim.raw("CreateContainerGroup", {
        "RegionId": sim.region, "ContainerGroupName": "bad-probe", "SecurityGroupId": sim.info["security_group_id"],
        "VSwitchId": sim.vswitches[0]["id"], "Container.1.Name": "app", "Container.1.Image": "nginx",
        **{f"Container.1.{k}": v for k, v in fields.items()},
    })  # fmt: skip
    assert status == 400, body
    assert f"Container.1.{parameter}" in body["Message"]
    assert sim.totals()["live"] == 0
