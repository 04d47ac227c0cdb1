"""Fuzz the daemon's pod translation: random pods, plausible to hostile, through the field check,
``spec.build`` and each cloud's request mapping, with each provider's profile.

What the reconciler does with a pod (``vnode/node/reconcile.py`` ``_create``): ``fields.refusals``
first, then ``spec.build``, whose documented failures are ``spec.Missing``, ``claims.Unbound``
and ``errors.InvalidSpec`` (each becomes a Warning event and a status naming the problem), then
the provider's mapping (ECI's ``create_params``, ACI's ``group_body``), where ``InvalidSpec`` is
the only refusal. Anything else raised is a crash of the pod's reconcile loop. Pods are decoded
the way the informer decodes them (``objects.Pod``), so they have the API server's types but
any values: 253-character and unicode names, a 1 MB annotation, 500 containers, 10,000
environment variables, unknown volume types, negative or absurd quantities, ports out of range.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from tests.fuzz import aci_harness, eci_harness
from tests.fuzz import strategies as hs
from vnode import errors, models
from vnode.kube import objects
from vnode.node import claims, fields, spec
from vnode.provider import profile as provider_profile
from vnode.provider.aci import mapping as aci_mapping
from vnode.provider.aci import profile as aci_profile
from vnode.provider.eci import mapping as eci_mapping
from vnode.provider.eci import profile as eci_profile

PROFILES = {"eci": eci_profile.PROFILE, "aci": aci_profile.PROFILE}

names = st.one_of(
    st.sampled_from(("app", "web-1", "a", "a" * 63, "a" * 64, "a" * 253, "App", "-a", "日本", "a.b", "")),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    hs.any_text,
)
quantities = st.one_of(
    st.sampled_from(
        ("1", "0", "-1", "100m", "0.5", "1.5Gi", "512Mi", "1e3", "1e309", "999999999", "99999Ti", "abc", "", "1Qi")
    ),
    st.sampled_from(("1", "2", "4")),
    hs.tricky,
)
ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from((0, -1, 1, 80, 65535, 65536, 2**31)))
small = st.text(max_size=20)
CONFIGMAPS = ("cfg", "other")
SECRETS = ("creds", "pull")


def _keyref() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.sampled_from((*CONFIGMAPS, *SECRETS, "nope")), "key": st.sampled_from(("k", "MODE", "x", ""))},
        optional={"optional": st.booleans()},
    )


env_var = st.one_of(
    st.fixed_dictionaries({"name": names, "value": st.one_of(small, hs.tricky)}),
    st.fixed_dictionaries({"name": names, "valueFrom": st.fixed_dictionaries({"configMapKeyRef": _keyref()})}),
    st.fixed_dictionaries({"name": names, "valueFrom": st.fixed_dictionaries({"secretKeyRef": _keyref()})}),
    st.fixed_dictionaries(
        {
            "name": names,
            "valueFrom": st.fixed_dictionaries(
                {
                    "fieldRef": st.fixed_dictionaries(
                        {
                            "fieldPath": st.sampled_from(
                                (
                                    "metadata.name",
                                    "metadata.labels['app']",
                                    "metadata.annotations['" + "x" * 300 + "']",
                                    "status.podIP",
                                    "spec.nodeName",
                                    "nope",
                                    "metadata.labels[",
                                    "",
                                )
                            )
                        }
                    )
                }
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "name": names,
            "valueFrom": st.fixed_dictionaries(
                {
                    "resourceFieldRef": st.fixed_dictionaries(
                        {"resource": st.sampled_from(("limits.cpu", "requests.memory", "limits.nope", ""))},
                        optional={"divisor": quantities, "containerName": names},
                    )
                }
            ),
        }
    ),
)
handler = st.one_of(
    st.fixed_dictionaries({"exec": st.fixed_dictionaries({"command": st.lists(small, max_size=3)})}),
    st.fixed_dictionaries(
        {"httpGet": st.fixed_dictionaries({"port": st.one_of(ints, names)}, optional={"path": small, "scheme": small})}
    ),
    st.fixed_dictionaries({"tcpSocket": st.fixed_dictionaries({"port": st.one_of(ints, names)})}),
    st.fixed_dictionaries({"sleep": st.fixed_dictionaries({"seconds": ints})}),
)
probe = st.fixed_dictionaries(
    {},
    optional={
        "exec": st.fixed_dictionaries({"command": st.lists(small, max_size=3)}),
        "httpGet": st.fixed_dictionaries({"port": st.one_of(ints, names)}),
        "tcpSocket": st.fixed_dictionaries({"port": st.one_of(ints, names)}),
        "periodSeconds": ints,
        "timeoutSeconds": ints,
        "failureThreshold": ints,
        "initialDelaySeconds": ints,
    },
)
resources = st.fixed_dictionaries(
    {},
    optional={
        "limits": st.dictionaries(
            st.sampled_from(("cpu", "memory", "nvidia.com/gpu", "ephemeral-storage", "x")), quantities, max_size=3
        ),
        "requests": st.dictionaries(st.sampled_from(("cpu", "memory", "nvidia.com/gpu")), quantities, max_size=3),
    },
)
container = st.fixed_dictionaries(
    {"name": names, "image": st.one_of(st.just("nginx"), small)},
    optional={
        "command": st.lists(st.one_of(small, hs.tricky), max_size=3),
        "args": st.lists(st.one_of(small, st.just("$(A) $(B)")), max_size=3),
        "env": st.lists(env_var, max_size=5),
        "envFrom": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "prefix": small,
                    "configMapRef": st.fixed_dictionaries({"name": st.sampled_from((*CONFIGMAPS, "nope"))}),
                    "secretRef": st.fixed_dictionaries({"name": st.sampled_from((*SECRETS, "nope"))}),
                },
            ),
            max_size=2,
        ),
        "ports": st.lists(
            st.fixed_dictionaries(
                {"containerPort": ints}, optional={"protocol": st.sampled_from(("TCP", "UDP", "SCTP", "ICMP", ""))}
            ),
            max_size=3,
        ),
        "resources": resources,
        "workingDir": st.one_of(small, hs.tricky),
        "volumeMounts": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(("v0", "v1", "v2", "nope")), "mountPath": st.one_of(small, hs.tricky)},
                optional={"subPath": small, "readOnly": st.booleans()},
            ),
            max_size=3,
        ),
        "livenessProbe": probe,
        "readinessProbe": probe,
        "lifecycle": st.fixed_dictionaries({}, optional={"postStart": handler, "preStop": handler}),
        "imagePullPolicy": st.sampled_from(("Always", "IfNotPresent", "Never", "Sometimes")),
        "securityContext": st.fixed_dictionaries(
            {},
            optional={
                "runAsUser": ints,
                "runAsGroup": ints,
                "readOnlyRootFilesystem": st.booleans(),
                "allowPrivilegeEscalation": st.booleans(),
                "capabilities": st.fixed_dictionaries(
                    {}, optional={"add": st.lists(small, max_size=2), "drop": st.lists(small, max_size=2)}
                ),
            },
        ),
        "terminationMessagePath": st.one_of(small, hs.tricky),
        "terminationMessagePolicy": st.sampled_from(("File", "FallbackToLogsOnError", "Other")),
    },
)
key_to_path = st.fixed_dictionaries(
    {"key": st.sampled_from(("k", "MODE", "x")), "path": st.one_of(small, hs.tricky)}, optional={"mode": ints}
)
volume_source = st.one_of(
    st.fixed_dictionaries(
        {
            "emptyDir": st.fixed_dictionaries(
                {}, optional={"medium": st.sampled_from(("", "Memory", "HugePages")), "sizeLimit": quantities}
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "configMap": st.fixed_dictionaries(
                {"name": st.sampled_from((*CONFIGMAPS, "nope"))},
                optional={"items": st.lists(key_to_path, max_size=2), "defaultMode": ints, "optional": st.booleans()},
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "secret": st.fixed_dictionaries(
                {"secretName": st.sampled_from((*SECRETS, "nope"))},
                optional={"items": st.lists(key_to_path, max_size=2), "defaultMode": ints},
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "projected": st.fixed_dictionaries(
                {
                    "sources": st.lists(
                        st.one_of(
                            st.fixed_dictionaries(
                                {
                                    "serviceAccountToken": st.fixed_dictionaries(
                                        {"path": small}, optional={"expirationSeconds": ints}
                                    )
                                }
                            ),
                            st.fixed_dictionaries({"configMap": st.fixed_dictionaries({"name": st.just("cfg")})}),
                            st.fixed_dictionaries({"downwardAPI": st.fixed_dictionaries({})}),
                        ),
                        max_size=2,
                    )
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "downwardAPI": st.fixed_dictionaries(
                {
                    "items": st.lists(
                        st.fixed_dictionaries(
                            {"path": small},
                            optional={
                                "fieldRef": st.fixed_dictionaries(
                                    {"fieldPath": st.sampled_from(("metadata.labels", "metadata.name", "nope"))}
                                )
                            },
                        ),
                        max_size=2,
                    )
                }
            )
        }
    ),
    st.fixed_dictionaries({"persistentVolumeClaim": st.fixed_dictionaries({"claimName": names})}),
    st.sampled_from(
        (
            {"hostPath": {"path": "/"}},
            {"nfs": {"server": "s", "path": "/x"}},
            {"csi": {"driver": "d"}},
            {"awsElasticBlockStore": {"volumeID": "v"}},  # unknown to vnode: decoded as no source at all
            {},
        )
    ),
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    n_containers = draw(st.sampled_from((1, 1, 1, 2, 3, 500)))
    one = draw(container)
    containers = [one] + [draw(container) for _ in range(min(n_containers - 1, 2))]
    if n_containers == 500:
        containers = [{**one, "name": f"c{n}"} for n in range(500)]
    if draw(st.integers(0, 15)) == 0:
        containers[0] = {**containers[0], "env": [{"name": f"E{n}", "value": "v"} for n in range(10_000)]}
    volumes = [{"name": f"v{n}", **draw(volume_source)} for n in range(draw(st.integers(0, 3)))]
    annotations = draw(
        st.dictionaries(
            st.sampled_from(
                (
                    "k8s.aliyun.com/eci-use-specs",
                    "k8s.aliyun.com/eci-instance-spec",
                    "k8s.aliyun.com/eci-spot-strategy",
                    "k8s.aliyun.com/eci-spot-price-limit",
                    "k8s.aliyun.com/eci-with-eip",
                    "k8s.aliyun.com/eip-bandwidth",
                    "k8s.aliyun.com/eci-image-cache",
                    "vnode.io/aci-priority",
                    "vnode.io/aci-public-ip",
                    "virtualkubelet.io/dnsnamelabel",
                    "virtual-kubelet.io/gpu-type",
                    "x",
                )
            ),
            st.one_of(hs.tricky, small, st.sampled_from(("2-4Gi", "ecs.c6.large", "true", "Spot", "SpotAsPriceGo"))),
            max_size=3,
        )
    )
    if draw(st.integers(0, 15)) == 0:
        annotations["big"] = "x" * 1_000_000
    body: dict[str, Any] = {
        "metadata": {
            "name": draw(names),
            "namespace": draw(st.one_of(st.just("ns"), names)),
            "uid": draw(st.one_of(st.just("uid-1"), small)),
            "labels": draw(st.dictionaries(small, small, max_size=2)),
            "annotations": annotations,
        },
        "spec": {
            "containers": containers,
            "initContainers": draw(st.lists(container, max_size=1)),
            "volumes": volumes,
            "restartPolicy": draw(st.sampled_from(("Always", "OnFailure", "Never", "Sometimes"))),
            "serviceAccountName": draw(st.sampled_from(("sa", "", "x" * 300))),
            "terminationGracePeriodSeconds": draw(st.one_of(st.none(), ints)),
            "hostname": draw(st.one_of(st.just(""), names)),
            "subdomain": draw(st.one_of(st.just(""), names)),
            "hostAliases": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"ip": st.one_of(small, st.just("10.0.0.1")), "hostnames": st.lists(small, max_size=2)}
                    ),
                    max_size=2,
                )
            ),
            "dnsPolicy": draw(st.sampled_from(("ClusterFirst", "Default", "None", "ClusterFirstWithHostNet", "x"))),
            "dnsConfig": draw(
                st.one_of(
                    st.none(),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "nameservers": st.lists(st.one_of(small, st.just("1.1.1.1")), max_size=4),
                            "searches": st.lists(small, max_size=7),
                            "options": st.lists(
                                st.fixed_dictionaries({"name": small}, optional={"value": small}), max_size=2
                            ),
                        },
                    ),
                )
            ),
            "securityContext": draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "runAsUser": ints,
                        "fsGroup": ints,
                        "sysctls": st.lists(
                            st.fixed_dictionaries(
                                {"name": st.sampled_from(("net.core.somaxconn", "kernel.shm_rmid_forced", "x", ""))},
                                optional={"value": small},
                            ),
                            max_size=2,
                        ),
                    },
                )
            ),
            "imagePullSecrets": draw(
                st.lists(st.fixed_dictionaries({"name": st.sampled_from((*SECRETS, "nope"))}), max_size=2)
            ),
        },
    }
    if body["spec"]["dnsConfig"] is None:
        del body["spec"]["dnsConfig"]
    if body["spec"]["terminationGracePeriodSeconds"] is None:
        del body["spec"]["terminationGracePeriodSeconds"]
    return body


SOURCES = spec.Sources(
    configmaps={"cfg": {"MODE": b"fast", "k": b"v", "bad key": b"x"}, "other": {"k": "é".encode() * 10}},
    secrets={
        "creds": {"k": b"s3cret", "x": b"\xff\xfe"},
        "pull": {".dockerconfigjson": b'{"auths": {"r.example": {"auth": "dTpw"}}}'},
    },
    tokens={},
)


def target(provider: provider_profile.Profile) -> spec.Target:
    return spec.Target(
        cluster_id="c1",
        node_name="vn-0",
        node_ip="192.168.0.9",
        placement=models.Placement(vswitches=("vsw-a", "vsw-b"), security_group="sg-1"),
        cluster_dns="10.96.0.10",
        profile=provider,
    )


def _named(message: str) -> None:
    """A refusal's message says something (it becomes the pod's status and its Warning event)."""
    assert message.strip()


def without(body: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """``body`` without the fields ``paths`` name (``spec.containers[0].lifecycle: why`` as refusals words them)."""
    body = msgspec.json.decode(msgspec.json.encode(body))  # a deep copy
    for refusal in paths:
        path = refusal.split(":", 1)[0]
        steps: list[str | int] = []
        for part in path.split("."):
            head, *indexes = part.replace("]", "").split("[")
            steps.append(head)
            steps += [int(i) for i in indexes]
        node: Any = body
        try:
            for step in steps[:-1]:
                node = node[step]
            del node[steps[-1]]
        except (KeyError, IndexError, TypeError):
            pass
    return body


@pytest.fixture(scope="module")
def eci_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[eci_harness.Harness]:
    made = eci_harness.Harness(tmp_path_factory.mktemp("fuzz-pods-eci"))
    yield made
    made.close()


@pytest.fixture(scope="module")
def aci_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[aci_harness.Harness]:
    made = aci_harness.Harness(tmp_path_factory.mktemp("fuzz-pods-aci"))
    yield made
    made.close()


def translate(body: dict[str, Any], provider_name: str) -> models.InstanceSpec | None:
    """What the reconciler does before a create call; raises only what it handles. A pod with
    refused fields is checked, then tried again without them (so the rest gets translated too)."""
    provider = PROFILES[provider_name]
    for _ in range(3):
        try:
            pod = msgspec.convert(body, objects.Pod)
        except msgspec.ValidationError:  # the API server would not have sent it (an int64 out of range...)
            event("not a pod")
            assume(False)
            return None
        refused = fields.refusals(pod, provider.pod_fields, provider.ignored_fields)
        if not refused:
            break
        message = fields.message(refused, provider.name)
        assert message
        event("refused fields, then without them")
        body = without(body, refused)
    else:
        return None
    try:
        wanted = spec.build(pod, SOURCES, target(provider))
    except (spec.Missing, claims.Unbound) as missing:
        _named(str(missing))
        event("missing source")
        return None
    except errors.InvalidSpec as invalid:
        _named(invalid.message)
        event(f"invalid spec: {invalid.message[:30]}")
        return None
    return wanted


@pytest.mark.parametrize("provider_name", sorted(PROFILES))
@given(body=pods())
def test_any_pod_is_translated_or_refused_with_a_reason(
    provider_name: str, body: dict[str, Any], eci_sim: eci_harness.Harness, aci_sim: aci_harness.Harness
) -> None:
    """And what the daemon would send, the simulated cloud answers without a server error."""
    wanted = translate(body, provider_name)
    if wanted is None:
        return
    try:
        if provider_name == "eci":
            world = eci_sim.cloud.world
            params = eci_mapping.create_params(
                wanted,
                region=world.region,
                vswitches=[v[0] for v in world.vswitches],
                security_group=world.security_groups[0][0],
                strategy="VSwitchOrdered",
            )
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
        else:
            group = aci_mapping.group_body(wanted, location="westeurope", subnet="")
    except errors.InvalidSpec as invalid:
        _named(invalid.message)
        event("refused by the mapping")
        return
    if provider_name == "eci":
        eci_sim.fresh()
        status, answer = eci_sim.call("CreateContainerGroup", list(params.items()))
        assert status < 500, answer
        event(f"mapped, the cloud answers {status} {answer.get('Code', '')}")
    else:
        aci_sim.fresh()
        status, answer = aci_sim.put("fuzz", msgspec.json.encode(group))
        aci_harness.check_answer(status, answer)
        event(f"mapped, the cloud answers {status} {answer['error']['code'] if status >= 400 else ''}")
