"""A pod's name resolution as the kubelet would set it up: resolv.conf, /etc/hosts, hostname.

Pure functions of the pod and the cluster's DNS service address. ``ClusterFirst`` (the default)
puts the cluster DNS service first with the search path ``<ns>.svc.cluster.local
svc.cluster.local cluster.local`` and ``ndots:5``; without a cluster DNS address it falls back to
``Default``, as the kubelet does. ``Default`` leaves the cloud's resolver. ``None`` is exactly the
pod's ``dnsConfig``. A ``dnsConfig`` is merged into the other policies the kubelet's way:
name servers and search domains appended without duplicates, options replaced by name.
"""

from __future__ import annotations

import dataclasses

from vnode import errors, models
from vnode.kube import objects

__all__ = ["CLUSTER_DOMAIN", "Resolver", "host_aliases", "hostname", "resolver"]

CLUSTER_DOMAIN = "cluster.local"
_CLUSTER_POLICIES = frozenset({"ClusterFirst", "ClusterFirstWithHostNet"})
_POLICIES = _CLUSTER_POLICIES | {"Default", "None"}


@dataclasses.dataclass(frozen=True)
class Resolver:
    """The instance's resolv.conf; all empty means the cloud's own resolver."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[models.DnsOption, ...] = ()


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def resolver(pod: objects.Pod, cluster_dns: str) -> Resolver:
    """The resolv.conf of ``pod`` given the cluster DNS service IP (empty: none known)."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    if policy not in _POLICIES:
        raise errors.InvalidSpec(f"dnsPolicy {policy!r} is not one of {', '.join(sorted(_POLICIES))}")
    config = pod.spec.dns_config
    if policy == "None" and config is None:
        raise errors.InvalidSpec("dnsPolicy None needs a dnsConfig")
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str] = {}
    if policy in _CLUSTER_POLICIES and cluster_dns:
        namespace = pod.metadata.namespace or "default"
        servers = [cluster_dns]
        searches = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = {"ndots": "5"}
    if config is not None:
        servers += config.nameservers
        searches += config.searches
        for option in config.options:
            if not option.name:
                raise errors.InvalidSpec("dnsConfig.options: an option without a name")
            options[option.name] = option.value or ""
    return Resolver(
        nameservers=_unique(servers),
        searches=_unique(searches),
        options=tuple(models.DnsOption(name, value) for name, value in options.items()),
    )


def host_aliases(pod: objects.Pod) -> tuple[models.HostAlias, ...]:
    """``spec.hostAliases`` as /etc/hosts entries; an entry without an IP or names is refused."""
    aliases = []
    for n, alias in enumerate(pod.spec.host_aliases):
        if not alias.ip or not alias.hostnames:
            raise errors.InvalidSpec(f"hostAliases[{n}]: needs an ip and at least one hostname")
        aliases.append(models.HostAlias(alias.ip, tuple(alias.hostnames)))
    return tuple(aliases)


def hostname(pod: objects.Pod) -> str:
    """The instance's hostname as the kubelet sets it: ``spec.hostname`` or the pod's name, cut to
    63 characters without a trailing '-' or '.' (``subdomain`` only adds the pod's FQDN in DNS)."""
    name = pod.spec.hostname or pod.metadata.name
    return name[:63].rstrip("-.")
