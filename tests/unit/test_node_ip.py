"""VNODE_NODE_IP=auto: the host's own address, which the API server's node and pod proxies accept."""

from __future__ import annotations

import ipaddress

from vnode import settings


def test_auto_is_the_hosts_address_on_its_default_route() -> None:
    chosen = settings.Settings(node_name="vn-0", node_ip=settings.AUTO_NODE_IP).node_ip
    assert chosen == settings.host_address()
    assert not ipaddress.ip_address(chosen).is_loopback


def test_an_explicit_address_is_kept_and_the_default_stays_loopback() -> None:
    assert settings.Settings(node_name="vn-0", node_ip="10.1.2.3").node_ip == "10.1.2.3"
    assert settings.Settings(node_name="vn-0").node_ip == "127.0.0.1"
    assert settings.Settings(node_name="vn-0").kubelet_anonymous_auth is False
