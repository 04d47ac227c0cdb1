"""Hostile ECI parameters the fuzzer (tests/fuzz/test_eci_params.py) found answered with a 500.

Each was an unhandled ``ValueError``: ``str.isdigit`` accepts ``²`` that ``int`` refuses, and
``int`` refuses more than 4300 digits; a config file's ``Mode`` was parsed with a bare ``int``.
``Container.01.Name`` stood for container 1 as ``Container.1.Name`` does, the later one silently
winning. Each is now a 400 in ECI's shape, in-process through ``Eci.handle``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.eci_harness import Harness

HUGE = "9" * 5000

CASES = {
    "superscript container index": ("CreateContainerGroup", {"Container.².Name": "b"}, "InvalidParameter"),
    "huge command index": ("CreateContainerGroup", {f"Container.1.Command.{HUGE}": "sh"}, "InvalidParameter"),
    "huge port index": ("CreateContainerGroup", {f"Container.1.Port.{HUGE}.Port": "80"}, "InvalidParameter"),
    "zero-padded index beside the plain one": (
        "CreateContainerGroup",
        {"Container.01.Name": "other", "Container.01.Image": "busybox"},
        "InvalidParameter",
    ),
    "superscript uid": ("CreateContainerGroup", {"Container.1.SecurityContext.RunAsUser": "²"}, "InvalidParameter"),
    "huge uid": ("CreateContainerGroup", {"Container.1.SecurityContext.RunAsUser": HUGE}, "InvalidParameter"),
    "superscript hook port": (
        "CreateContainerGroup",
        {"Container.1.LifecyclePreStopHandlerTcpSocketPort": "²"},
        "InvalidParameter",
    ),
    "superscript capability index": (
        "CreateContainerGroup",
        {"Container.1.SecurityContext.Capability.Add.²": "NET_RAW"},
        "InvalidParameter",
    ),
    "superscript name server index": (
        "CreateContainerGroup",
        {"DnsConfig.NameServer.²": "1.1.1.1"},
        "InvalidParameter",
    ),
    "config file mode not a number": (
        "CreateContainerGroup",
        {
            "Volume.1.Name": "v",
            "Volume.1.Type": "ConfigFileVolume",
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a",
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode": "rw",
        },
        "InvalidParameter",
    ),
    "image cache superscript token": ("DescribeImageCaches", {"NextToken": "²"}, "InvalidParameter"),
}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    made = Harness(tmp_path_factory.mktemp("eci-hostile"))
    yield made
    made.close()


@pytest.mark.parametrize(("action", "extra", "code"), CASES.values(), ids=CASES.keys())
def test_hostile_parameter_is_a_400_in_the_clouds_shape(
    harness: Harness, action: str, extra: dict[str, str], code: str
) -> None:
    instance = harness.fresh()
    params = {**harness.base(action, instance.id), **extra}
    status, body = harness.call(action, list(params.items()))
    assert (status, body["Code"]) == (400, code), body
    assert body["RequestId"]
    assert body["Message"]
    assert len(harness.cloud.live) == 1  # nothing was created


def test_image_numbers_that_are_not_indexes_are_not_images(harness: Harness) -> None:
    instance = harness.fresh()
    params = harness.base("DescribeImageCaches", instance.id) | {"MatchImage.²": "nginx"}
    status, body = harness.call("DescribeImageCaches", list(params.items()))
    assert status == 200, body


def test_a_config_file_mode_in_range_is_kept(harness: Harness) -> None:
    instance = harness.fresh()
    params = harness.base("CreateContainerGroup", instance.id) | {
        "Volume.1.Name": "v",
        "Volume.1.Type": "ConfigFileVolume",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode": "420",
    }
    status, body = harness.call("CreateContainerGroup", list(params.items()))
    assert status == 200, body
    created = harness.cloud.live[body["ContainerGroupId"]]
    assert created.spec.volumes[0].files[0].mode == 420
