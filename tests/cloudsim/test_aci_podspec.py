"""The pod-spec fields of a container group through the official ACI SDK: the simulator stores and
returns them as ACI does, and refuses what ACI refuses."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here

PRIVATE = "registry.private.example/team/nginx:1"


def _refused(sim: SimThread, name: str, body: aci_models.ContainerGroup) -> str:
    with sim.client() as client, pytest.raises(HttpResponseError) as info:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, body, polling=False)
    assert info.value.status_code == 400
    return str(info.value.error.code)


def test_a_private_image_runs_with_a_credential_for_its_server_and_the_password_is_not_returned(
    aci_sim: SimThread,
) -> None:
    body = group(PRIVATE)
    body.image_registry_credentials = [
        aci_models.ImageRegistryCredential(server="registry.private.example", username="robot", password="s3cret")
    ]
    with aci_sim.client() as client:
        poller = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "private", body)
        aci_sim.call(lambda c: c.advance(10))
        done = poller.result(timeout=30)
        assert done.instance_view.state == "Running"
        (login,) = client.container_groups.get(RESOURCE_GROUP, "private").image_registry_credentials
    assert (login.server, login.username, login.password) == ("registry.private.example", "robot", None)


def test_a_private_image_without_a_credential_for_its_server_fails_its_pull(aci_sim: SimThread) -> None:
    body = group(PRIVATE)
    body.image_registry_credentials = [
        aci_models.ImageRegistryCredential(server="other.example", username="robot", password="s3cret")
    ]
    with aci_sim.client() as client:
        poller = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "nologin", body)
        aci_sim.call(lambda c: c.advance(10))
        with pytest.raises(HttpResponseError) as info:
            poller.result(timeout=30)
        assert info.value.error.code == "InaccessibleImage"
        assert f'Failed to pull image "{PRIVATE}"' in info.value.error.message
        failed = client.container_groups.get(RESOURCE_GROUP, "nologin")
    assert (failed.provisioning_state, failed.instance_view.state) == ("Failed", "Failed")
    (container,) = failed.containers
    assert container.instance_view.current_state.detail_status == "ErrImagePull"
    assert "Failed" in [e.name for e in container.instance_view.events]


def test_a_credential_needs_a_server_and_a_username_once_per_server(aci_sim: SimThread) -> None:
    login = aci_models.ImageRegistryCredential
    for name, logins, code in [
        ("noserver", [login(server="", username="u", password="p")], "InvalidImageRegistryCredential"),
        ("nouser", [login(server="r.example", username="", password="p")], "InvalidImageRegistryCredential"),
        (
            "twice",
            [login(server="r.example", username="u", password="p"), login(server="R.example", username="v")],
            "DuplicateImageRegistryCredential",
        ),
    ]:
        body = group()
        body.image_registry_credentials = logins
        assert _refused(aci_sim, name, body) == code
    assert aci_sim.call(lambda c: len(c.live)) == 0


def test_dns_config_is_stored_and_returned_with_its_strings(aci_sim: SimThread) -> None:
    body = group()
    body.dns_config = aci_models.DnsConfiguration(
        name_servers=["1.1.1.1"], search_domains="corp.example svc.cluster.local", options="ndots:2 edns0"
    )
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "dns", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "dns").dns_config
    assert (got.name_servers, got.search_domains, got.options) == (
        ["1.1.1.1"],
        "corp.example svc.cluster.local",
        "ndots:2 edns0",
    )
    stored = aci_sim.call(lambda c: next(iter(c.live.values())).spec.dns_config)
    assert stored.searches == ("corp.example", "svc.cluster.local")
    assert [(o.name, o.value) for o in stored.options] == [("ndots", "2"), ("edns0", "")]


def test_dns_config_without_a_name_server_is_refused(aci_sim: SimThread) -> None:
    body = group()
    body.dns_config = aci_models.DnsConfiguration(name_servers=[], search_domains="corp.example")
    assert _refused(aci_sim, "nodns", body) == "InvalidDnsConfig"


def test_run_as_user_and_added_capabilities_are_stored_and_returned(aci_sim: SimThread) -> None:
    body = group()
    body.containers[0].security_context = aci_models.SecurityContextDefinition(
        run_as_user=1000, capabilities=aci_models.SecurityContextCapabilitiesDefinition(add=["NET_ADMIN"])
    )
    body.init_containers = [
        aci_models.InitContainerDefinition(
            name="init", image="busybox", security_context=aci_models.SecurityContextDefinition(run_as_user=0)
        )
    ]
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "secure", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "secure")
    context = got.containers[0].security_context
    assert (context.run_as_user, context.capabilities.add) == (1000, ["NET_ADMIN"])
    assert got.init_containers[0].security_context.run_as_user == 0
    negative = group()
    negative.containers[0].security_context = aci_models.SecurityContextDefinition(run_as_user=-1)
    assert _refused(aci_sim, "negative", negative) == "InvalidContainerSecurityContext"


def test_the_group_dropped_capabilities_and_privilege_escalation_are_stored_and_returned(aci_sim: SimThread) -> None:
    body = group()
    body.containers[0].security_context = aci_models.SecurityContextDefinition(
        run_as_user=1000,
        run_as_group=3000,
        allow_privilege_escalation=False,
        capabilities=aci_models.SecurityContextCapabilitiesDefinition(add=["NET_BIND_SERVICE"], drop=["ALL"]),
    )
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "restricted", body, polling=False)
        context = client.container_groups.get(RESOURCE_GROUP, "restricted").containers[0].security_context
    assert (context.run_as_group, context.allow_privilege_escalation) == (3000, False)
    assert (context.capabilities.add, context.capabilities.drop) == (["NET_BIND_SERVICE"], ["ALL"])
    negative = group()
    negative.containers[0].security_context = aci_models.SecurityContextDefinition(run_as_group=-1)
    assert _refused(aci_sim, "negative-group", negative) == "InvalidContainerSecurityContext"


def test_probes_are_stored_and_returned_and_a_probe_without_one_check_is_refused(aci_sim: SimThread) -> None:
    body = group()
    body.containers[0].liveness_probe = aci_models.ContainerProbe(
        exec_property=aci_models.ContainerExec(command=["cat", "/tmp/healthy"]), period_seconds=5, failure_threshold=2
    )
    body.containers[0].readiness_probe = aci_models.ContainerProbe(
        http_get=aci_models.ContainerHttpGet(port=8080, path="/ready", scheme="https"), initial_delay_seconds=3
    )
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "probed", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "probed").containers[0]
    live, ready = got.liveness_probe, got.readiness_probe
    assert (live.exec_property.command, live.period_seconds, live.failure_threshold) == (["cat", "/tmp/healthy"], 5, 2)
    assert (ready.http_get.port, ready.http_get.path, ready.http_get.scheme) == (8080, "/ready", "https")
    assert (ready.initial_delay_seconds, ready.period_seconds, ready.timeout_seconds) == (3, 10, 1)
    bad = {
        "none": aci_models.ContainerProbe(period_seconds=5),  # a tcpSocket probe would arrive like this
        "both": aci_models.ContainerProbe(
            exec_property=aci_models.ContainerExec(command=["true"]), http_get=aci_models.ContainerHttpGet(port=80)
        ),
        "port": aci_models.ContainerProbe(http_get=aci_models.ContainerHttpGet(port=70000)),
        "period": aci_models.ContainerProbe(exec_property=aci_models.ContainerExec(command=["true"]), period_seconds=0),
        "success": aci_models.ContainerProbe(
            exec_property=aci_models.ContainerExec(command=["true"]), success_threshold=2
        ),
    }
    for name, probe in bad.items():
        refused = group()
        refused.containers[0].liveness_probe = probe
        assert _refused(aci_sim, f"bad-{name}", refused) == "InvalidContainerProbe", name


def test_an_azure_files_volume_is_kept_and_returned_without_its_key(aci_sim: SimThread) -> None:
    body = group()
    share = aci_models.AzureFileVolume(share_name="data", storage_account_name="acct", storage_account_key="k3y")
    body.volumes = [aci_models.Volume(name="files", azure_file=share), aci_models.Volume(name="scratch", empty_dir={})]
    body.containers[0].volume_mounts = [aci_models.VolumeMount(name="files", mount_path="/data", read_only=True)]
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "shared", body, polling=False)
        got = client.container_groups.get(RESOURCE_GROUP, "shared")
    files, scratch = got.volumes
    assert (files.azure_file.share_name, files.azure_file.storage_account_name) == ("data", "acct")
    assert files.azure_file.storage_account_key is None, "ARM returns no secret"
    assert scratch.empty_dir is not None
    (mount,) = got.containers[0].volume_mounts
    assert (mount.name, mount.mount_path, mount.read_only) == ("files", "/data", True)
    unknown = group()
    unknown.containers[0].volume_mounts = [aci_models.VolumeMount(name="nowhere", mount_path="/x")]
    assert _refused(aci_sim, "unmounted", unknown) == "InvalidVolumeMount"
    no_share = group()
    no_share.volumes = [
        aci_models.Volume(name="v", azure_file=aci_models.AzureFileVolume(share_name="", storage_account_name="a"))
    ]
    assert _refused(aci_sim, "no-share", no_share) == "InvalidVolume"
