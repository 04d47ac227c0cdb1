"""Settings come from the field's environment names, flags win, and bad values name themselves."""

from __future__ import annotations

import pathlib

import pytest

from vnode import errors, settings
from vnode.provider.aci import config as aci_config
from vnode.provider.eci import config as eci_config


def test_env_names_of_the_field() -> None:
    loaded = settings.load(
        {
            "POD_NAME": "virtual-node-eci-0",
            "ECI_VSWITCH": "vsw-a, vsw-b",
            "ECI_KUBE_PROXY": "false",
            "ECI_QUOTA_CPU": "100",
            "ECI_REGION": "cn-beijing",
        }
    )
    assert loaded.node_name == "virtual-node-eci-0"
    assert loaded.cloud.vswitches == ("vsw-a", "vsw-b")
    assert loaded.cloud.kube_proxy is False
    assert loaded.quota_cpu == 100
    assert loaded.taint == "alibabacloud"


def test_flags_override_env_and_vnode_node_name_beats_pod_name() -> None:
    loaded = settings.load({"POD_NAME": "a", "VNODE_NODE_NAME": "b", "ECI_REGION": "x"}, {"eci.region": "y"})
    assert loaded.node_name == "b"
    assert loaded.cloud.region == "y"


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"POD_NAME": "n", "ECI_QUOTA_CPU": "-1"}, {}, "ECI_QUOTA_CPU"),
        ({"POD_NAME": "n", "ECI_KUBE_PROXY": "maybe"}, {}, "ECI_KUBE_PROXY"),
        ({"POD_NAME": "Bad_Name"}, {}, "VNODE_NODE_NAME"),
        ({"POD_NAME": "n"}, {"status_interval": 0}, "--status-interval"),
        ({}, {}, "node name"),
    ],
)
def test_invalid_settings_raise_one_line_naming_the_setting(
    env: dict[str, str], flags: dict[str, object], named: str
) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        settings.load(env, flags)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_aci_token_is_a_setting_of_its_own() -> None:
    loaded = settings.load({"POD_NAME": "n", "VNODE_PROVIDER": "aci", "ACI_TOKEN": "tok"})
    assert loaded.cloud.token == "tok"
    assert loaded.cloud.client_secret == ""
    client = {"ACI_TENANT_ID": "t", "ACI_CLIENT_ID": "c", "ACI_CLIENT_SECRET": "s"}
    loaded = settings.load({"POD_NAME": "n", "VNODE_PROVIDER": "aci", **client})
    aci = loaded.cloud
    assert (aci.tenant_id, aci.client_id, aci.client_secret, aci.token) == ("t", "c", "s", "")


@pytest.mark.parametrize(
    ("env", "named", "unnamed"),
    [
        # a token and client credentials: which one would be used is not for vnode to guess
        ({"ACI_TOKEN": "tok-1", "ACI_CLIENT_SECRET": "sec-1"}, ("ACI_TOKEN", "ACI_CLIENT_SECRET"), ("ACI_TENANT_ID",)),
        (
            {"ACI_TOKEN": "tok-1", "ACI_TENANT_ID": "t", "ACI_CLIENT_ID": "c", "ACI_CLIENT_SECRET": "sec-1"},
            ("ACI_TOKEN", "ACI_TENANT_ID", "ACI_CLIENT_ID", "ACI_CLIENT_SECRET"),
            (),
        ),
        # the old way of passing a bearer token (a client secret with no tenant) points to ACI_TOKEN
        ({"ACI_CLIENT_SECRET": "sec-1"}, ("ACI_CLIENT_SECRET", "ACI_TENANT_ID", "ACI_CLIENT_ID", "ACI_TOKEN"), ()),
        ({"ACI_TENANT_ID": "t", "ACI_CLIENT_ID": "c"}, ("ACI_TENANT_ID", "ACI_CLIENT_ID", "ACI_CLIENT_SECRET"), ()),
    ],
)
def test_ambiguous_aci_credentials_are_refused_in_one_line_naming_them(
    env: dict[str, str], named: tuple[str, ...], unnamed: tuple[str, ...]
) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        settings.load({"POD_NAME": "n", "VNODE_PROVIDER": "aci", **env})
    message = str(caught.value)
    assert "\n" not in message
    for name in named:
        assert name in message
    for name in unnamed:
        assert name not in message
    assert "tok-1" not in message, "the line must not echo a secret"
    assert "sec-1" not in message, "the line must not echo a secret"


@pytest.mark.parametrize(("content", "said"), [(None, "cannot be read"), ("not a certificate\n", "holds no PEM")])
def test_an_aci_ca_file_that_is_missing_or_not_pem_is_one_line_at_start(
    tmp_path: pathlib.Path, content: str | None, said: str
) -> None:
    """It used to pass here and crash the daemon's first TLS call with a bare FileNotFoundError traceback."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(errors.ConfigError) as caught:
        settings.load({"POD_NAME": "n", "VNODE_PROVIDER": "aci", "ACI_TOKEN": "t", "ACI_CA_FILE": str(path)})
    message = str(caught.value)
    assert ("ACI_CA_FILE" in message, said in message, "\n" in message) == (True, True, False)


def test_profile_from_configmap() -> None:
    profile = settings.profile_from_configmap({"vSwitchIds": "vsw-1,vsw-2", "securityGroupId": "sg-1", "other": "x"})
    assert profile.vswitches == ("vsw-1", "vsw-2")
    with pytest.raises(errors.ConfigError, match="defaultCpu"):
        settings.profile_from_configmap({"defaultCpu": "zero"})


def test_the_daemons_own_pod_comes_from_the_downward_api_names() -> None:
    loaded = settings.load(
        {
            "POD_NAME": "virtual-node-eci-2",
            "POD_NAMESPACE": "kube-system",
            "POD_UID": "u-1",
            "VNODE_TERMINATION_GRACE_SECONDS": "90",
        }
    )
    assert (loaded.pod_name, loaded.pod_namespace, loaded.pod_uid) == ("virtual-node-eci-2", "kube-system", "u-1")
    assert loaded.termination_grace_seconds == 90
    assert settings.load({"VNODE_NODE_NAME": "n"}).termination_grace_seconds == 30
    with pytest.raises(errors.ConfigError, match="VNODE_TERMINATION_GRACE_SECONDS"):
        settings.load({"POD_NAME": "n", "VNODE_TERMINATION_GRACE_SECONDS": "soon"})


def test_the_settings_a_refused_key_came_from_are_named_per_provider() -> None:
    assert eci_config.credentials_named(eci_config.EciSettings()) == "ECI_ACCESS_KEY/ECI_SECRET_KEY"
    from_secret = eci_config.EciSettings(credentials_secret="kube-system/keys")
    assert "Secret kube-system/keys (ECI_CREDENTIALS_SECRET)" in eci_config.credentials_named(from_secret)
    assert aci_config.credentials_named(aci_config.AciSettings(token="t")).startswith("ACI_TOKEN ")
    assert aci_config.credentials_named(aci_config.AciSettings()).startswith("ACI_TENANT_ID/ACI_CLIENT_ID/")
