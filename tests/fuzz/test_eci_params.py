"""Fuzz the simulator's ECI RPC parameters: never a 500, a hang or an unhandled exception.

Each example is one signed request through ``Eci.handle`` (the aiohttp handler of ``POST /``),
in-process on a mocked request so no socket or thread is involved: a valid call of a random
action, then parameters set to hostile values (wrong types, huge strings, unicode, absurd
numbers, malformed and duplicated indexes such as ``Container.01.Name`` beside
``Container.1.Name``), others dropped, unknown ones added. Every answer must be a 2xx or a
4xx with ECI's error shape (``RequestId``, ``Code``, ``Message``); an exception out of the
handler is what aiohttp would turn into a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as hs
from tests.fuzz.eci_harness import Harness
from vnode.cloudsim import eci

_CONTAINER = (
    "Name",
    "Image",
    "Cpu",
    "Memory",
    "Gpu",
    "Command.{j}",
    "Arg.{j}",
    "EnvironmentVar.{j}.Key",
    "EnvironmentVar.{j}.Value",
    "EnvironmentVar.{j}.FieldRef.FieldPath",
    "Port.{j}.Port",
    "Port.{j}.Protocol",
    "VolumeMount.{j}.Name",
    "VolumeMount.{j}.MountPath",
    "VolumeMount.{j}.ReadOnly",
    "VolumeMount.{j}.SubPath",
    "ImagePullPolicy",
    "WorkingDir",
    "SecurityContext.RunAsUser",
    "SecurityContext.ReadOnlyRootFilesystem",
    "SecurityContext.Capability.Add.{j}",
    "LifecyclePostStartHandlerExec.{j}",
    "LifecyclePostStartHandlerHttpGetPort",
    "LifecyclePostStartHandlerHttpGetScheme",
    "LifecyclePostStartHandlerHttpGetHttpHeader.{j}.Name",
    "LifecyclePreStopHandlerTcpSocketPort",
    "LifecyclePreStopHandlerExec.{j}",
    "TerminationMessagePath",
    "TerminationMessagePolicy",
)
_VOLUME = (
    "Name",
    "Type",
    "ConfigFileVolume.ConfigFileToPath.{j}.Path",
    "ConfigFileVolume.ConfigFileToPath.{j}.Content",
    "ConfigFileVolume.ConfigFileToPath.{j}.Mode",
    "EmptyDirVolume.Medium",
    "EmptyDirVolume.SizeLimit",
    "NFSVolume.Server",
    "NFSVolume.Path",
    "NFSVolume.ReadOnly",
    "DiskVolume.DiskId",
    "DiskVolume.FsType",
    "DiskVolume.DiskSize",
)
TEMPLATES = (
    *(f"Container.{{i}}.{f}" for f in _CONTAINER),
    *(f"InitContainer.{{i}}.{f}" for f in _CONTAINER),
    *(f"Volume.{{i}}.{f}" for f in _VOLUME),
    "Tag.{i}.Key",
    "Tag.{i}.Value",
    "DnsConfig.NameServer.{i}",
    "DnsConfig.Search.{i}",
    "DnsConfig.Option.{i}.Name",
    "DnsConfig.Option.{i}.Value",
    "HostAliase.{i}.Ip",
    "HostAliase.{i}.Hostname.{j}",
    "SecurityContext.Sysctl.{i}.Name",
    "SecurityContext.Sysctl.{i}.Value",
    "ImageRegistryCredential.{i}.Server",
    "ImageRegistryCredential.{i}.UserName",
    "ImageRegistryCredential.{i}.Password",
    "Image.{i}",
    "MatchImage.{i}",
)
SCALARS = (
    "RegionId",
    "ContainerGroupName",
    "ContainerGroupId",
    "ContainerGroupIds",
    "ContainerName",
    "SecurityGroupId",
    "VSwitchId",
    "Cpu",
    "Memory",
    "RestartPolicy",
    "ZoneId",
    "ClientToken",
    "ScheduleStrategy",
    "InstanceType",
    "HostName",
    "ImageSnapshotId",
    "AutoMatchImageCache",
    "AutoCreateEip",
    "EipBandwidth",
    "EipInstanceId",
    "SpotStrategy",
    "SpotPriceLimit",
    "SpotDuration",
    "TerminationGracePeriodSeconds",
    "Limit",
    "NextToken",
    "Status",
    "WithEvent",
    "SinceSecond",
    "Tail",
    "SinceSeconds",
    "Timestamps",
    "LimitBytes",
    "LastTime",
    "Command",
    "Sync",
    "TTY",
    "Stdin",
    "MetricType",
    "Period",
    "StartTime",
    "EndTime",
    "ImageCacheName",
    "ImageCacheId",
    "ImageCacheSize",
    "RetentionDays",
    "Image",
)
INDEXES = st.one_of(
    st.integers(1, 4).map(str), st.sampled_from(("0", "01", "-1", "²", "\u0661", "x", "", "99999", "9" * 5000))
)
# Values a field expects, so hostile values elsewhere meet a request that gets far.
PLAUSIBLE = st.sampled_from(
    (
        "nginx",
        "app",
        "ConfigFileVolume",
        "EmptyDirVolume",
        "NFSVolume",
        "DiskVolume",
        "FlexVolume",
        "HostPathVolume",
        "TCP",
        "UDP",
        "Memory",
        "256Mi",
        "d-123",
        "/data",
        "aGVsbG8=",
        "NET_ADMIN",
        "SYS_ADMIN",
        "kernel.shm_rmid_forced",
        "status.podIP",
        "HTTP",
        "Always",
        "Never",
        "OnFailure",
        "SpotAsPriceGo",
        "SpotWithPriceLimit",
        '["sh", "-c", "echo hi"]',
        "80",
        "2",
        "4",
    )
)
VALUES = st.one_of(hs.value, PLAUSIBLE)


@st.composite
def keys(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(hs.any_text, st.sampled_from(("Container", "Container.", "Container.1", "Tag..Key"))))
    if draw(st.booleans()):
        return draw(st.sampled_from(SCALARS))
    return draw(st.sampled_from(TEMPLATES)).format(i=draw(INDEXES), j=draw(INDEXES))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    made = Harness(tmp_path_factory.mktemp("fuzz-eci"))
    yield made
    made.close()


def check_answer(status: int, body: dict[str, Any]) -> None:
    """A success, or a client error in ECI's shape: never a server error."""
    assert status < 500, body
    hypothesis.event(f"{status} {body.get('Code', '')}")
    if status >= 400:
        assert set(body) >= {"RequestId", "Code", "Message"}, body
        for field in ("RequestId", "Code", "Message"):
            assert body[field], body


ACTIONS = st.sampled_from(sorted(eci.ACTIONS))


@given(
    action=ACTIONS,
    changes=st.lists(st.tuples(keys(), VALUES), max_size=8),
    drops=st.lists(
        st.sampled_from(("RegionId", "ContainerGroupId", "Container.1.Name", "Container.1.Image")), max_size=2
    ),
)
def test_every_action_answers_hostile_parameters_in_the_clouds_error_shape(
    harness: Harness, action: str, changes: list[tuple[str, str]], drops: list[str]
) -> None:
    instance = harness.fresh()
    params = harness.base(action, instance.id)
    for key in drops:
        params.pop(key, None)
    pairs = list(params.items()) + changes  # a key repeated: the later one wins, as in the server's parse
    check_answer(*harness.call(action, pairs))


@given(
    fields=st.lists(st.tuples(st.sampled_from(_CONTAINER), INDEXES, VALUES), max_size=10),
    prefix=st.sampled_from(("Container", "InitContainer")),
    index=INDEXES,
    volume_type=st.sampled_from(("ConfigFileVolume", "EmptyDirVolume", "NFSVolume", "DiskVolume", "HostPath", "")),
    volume_fields=st.lists(st.tuples(st.sampled_from(_VOLUME), INDEXES, VALUES), max_size=6),
)
def test_create_with_hostile_containers_and_volumes_answers_in_the_clouds_error_shape(
    harness: Harness,
    fields: list[tuple[str, str, str]],
    prefix: str,
    index: str,
    volume_type: str,
    volume_fields: list[tuple[str, str, str]],
) -> None:
    instance = harness.fresh()
    params = list(harness.base("CreateContainerGroup", instance.id).items())
    params += [("Volume.1.Name", "v"), ("Volume.1.Type", volume_type), ("Container.1.VolumeMount.1.Name", "v")]
    params += [("Container.1.VolumeMount.1.MountPath", "/v")]
    params += [(f"{prefix}.{index}.{field.format(j=j)}", value) for field, j, value in fields]
    params += [(f"Volume.1.{field.format(j=j)}", value) for field, j, value in volume_fields]
    check_answer(*harness.call("CreateContainerGroup", params))


HEADERS = (
    "Authorization",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-action",
    "x-acs-version",
)


@given(
    tamper=st.dictionaries(
        st.sampled_from(HEADERS), st.one_of(hs.tricky, hs.any_text, st.just("2026-13-45T25:61:61Z"))
    ),
    raw_query=st.one_of(
        st.none(), st.text(max_size=80), st.sampled_from(("%", "%zz", "%ff%fe", "a=%00", "&&=&", "=x"))
    ),
    action=ACTIONS,
)
def test_hostile_headers_and_raw_queries_are_refused_in_the_clouds_shape(
    harness: Harness, tamper: dict[str, str], raw_query: str | None, action: str
) -> None:
    instance = harness.fresh()
    params = list(harness.base(action, instance.id).items())
    check_answer(*harness.call(action, params, raw_query=raw_query, tamper=tamper))
