"""Service-account token renewal: the kubelet's rule (80 % of the life, 24 h at most), the schedule, and the
renewer's bookkeeping (a renewal reaches the instance; a deleted pod leaves nothing behind)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from tests.waiting import until
from vnode import errors, models
from vnode.kube import client, objects
from vnode.node import book, references, renewal, spec, tokens

HOUR = 3600.0


def jwt(iat: float, exp: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"iat": int(iat), "exp": int(exp)}).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"


def rfc3339(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the rule ---


@pytest.mark.parametrize(
    ("life", "after"),
    [
        (600, 480),  # the API server's minimum: renewed after 8 minutes
        (3607, 0.8 * 3607),  # kube-api-access
        (10 * HOUR, 8 * HOUR),
        (30 * HOUR, 24 * HOUR),  # older than a day: renewed, whatever its life
        (365 * 24 * HOUR, 24 * HOUR),
    ],
)
def test_a_token_is_renewed_at_80_percent_of_its_life_and_at_most_after_24_hours(life: float, after: float) -> None:
    assert tokens.renew_after(life) == pytest.approx(after)


def test_the_life_is_the_issued_one_expiration_timestamp_less_the_jwt_iat() -> None:
    iat = 1_700_000_000.0
    # The API server set it longer than asked (or capped it shorter): the answer counts, not the ask.
    assert tokens.life_of(jwt(iat, iat + 7200), rfc3339(iat + 7200), asked=600) == 7200
    assert tokens.life_of(jwt(iat, iat + 1e9), rfc3339(iat + 3607), asked=3607) == 3607  # warnafter vs exp
    assert tokens.life_of(jwt(iat, iat + 900), None, asked=600) == 900


@pytest.mark.parametrize("token", ["opaque", "a.not-base64!.c", "a.e30.c"])  # e30 = "{}": no iat
def test_an_unreadable_token_lives_the_asked_seconds(token: str) -> None:
    assert tokens.life_of(token, rfc3339(1_700_000_000), asked=600) == 600


def test_after_a_restart_the_due_time_is_derived_from_the_instance_creation_or_now() -> None:
    now = 1_700_000_000.0
    young = now - 100
    assert tokens.derived_due(young, [600], now) == young - tokens.CREATE_MARGIN + 480
    # A longer ask may have been capped down to an hour by the API server: assume the hour.
    assert tokens.derived_due(young, [7200], now) == young - tokens.CREATE_MARGIN + 0.8 * HOUR
    assert tokens.derived_due(young, [7200, 600], now) == young - tokens.CREATE_MARGIN + 480  # the shortest
    assert tokens.derived_due(now - 2 * HOUR, [3607], now) == now  # older than 80 %: renewed now, once
    assert tokens.derived_due(None, [3607], now) == now  # no creation time: renewed now, once


# --- the schedule ---


def test_the_schedule_gives_keys_in_due_order_and_a_key_once() -> None:
    schedule = tokens.Schedule()
    assert schedule.next() is None
    assert schedule.set("a", 30.0)
    assert schedule.set("b", 10.0)  # the new earliest: a sleeping runner must wake
    assert not schedule.set("c", 20.0)
    assert schedule.set("a", 5.0)  # moved: its old entry no longer counts
    assert schedule.next() == 5.0
    assert schedule.pop(15.0) == ["a", "b"]
    assert schedule.pop(15.0) == []
    assert schedule.next() == 20.0
    assert len(schedule) == 1
    schedule.drop("c")
    assert schedule.next() is None
    assert schedule.pop(1e9) == []


def test_dropped_and_moved_keys_do_not_accumulate_on_the_heap() -> None:
    schedule = tokens.Schedule()
    for round_ in range(50):
        for n in range(100):
            schedule.set(f"ns/p{n}", float(round_ * 100 + n))
    assert len(schedule) == 100
    assert schedule.size <= 2 * 100 + 16
    for n in range(100):
        schedule.drop(f"ns/p{n}")
    assert len(schedule) == 0
    assert schedule.size <= 16
    assert schedule.next() is None


# --- the renewer ---


def pod(name: str = "web", *, uid: str = "uid-1", token: bool = True, seconds: int = 600) -> objects.Pod:
    volumes: list[dict[str, Any]] = [{"name": "cfg", "configMap": {"name": "app"}}]
    if token:
        sources = [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": seconds}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]
        volumes.append({"name": "kube-api-access", "projected": {"sources": sources}})
    body = {
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "volumes": volumes},
    }
    return msgspec.json.decode(msgspec.json.encode(body), type=objects.Pod)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Kube:
    """The TokenRequest endpoint: each answer a new token, issued on ``clock``, living ``life`` seconds."""

    def __init__(self, clock: Clock, life: float) -> None:
        self.clock, self.life = clock, life
        self.requests: list[tuple[str, Any]] = []

    async def create(self, path: str, body: Any) -> bytes:
        self.requests.append((path, body))
        iat = self.clock.now + len(self.requests)  # distinct tokens
        status = {"token": jwt(iat, iat + self.life), "expirationTimestamp": rfc3339(iat + self.life)}
        return json.dumps({"status": status}).encode()


class Cloud:
    """``base.SupportsVolumeUpdate``, recording the updates; ``fail`` raises on the next calls."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, list[models.VolumeSpec], str]] = []
        self.fail: list[errors.ApiError] = []

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.updates.append((instance_id, list(volumes), client_token))


async def read_ref(namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
    return {"ca.crt": b"CA"} if (kind, name) == ("configmaps", "kube-root-ca.crt") else None


def renewer(clock: Clock, kube: Kube, cloud: Cloud, view: book.View) -> renewal.Renewer:
    return renewal.Renewer(
        kube,  # type: ignore[arg-type]
        cloud,
        view,
        target=spec.Target(cluster_id="c", node_name="vn-0"),
        references=references.Cache(read_ref),
        rng=random.Random(1),
        clock=clock,
    )


def running(uid: str, created_at: float | None = None) -> models.InstanceState:
    created = None if created_at is None else datetime.datetime.fromtimestamp(created_at, datetime.UTC)
    return models.InstanceState(
        "i-1", models.InstanceStatus.RUNNING, tags={models.TAG_POD_UID: uid}, created_at=created
    )


def token_of(update: tuple[str, list[models.VolumeSpec], str]) -> str:
    [volume] = update[1]
    assert volume.name == "kube-api-access"
    files = {f.path: f.content for f in volume.files}
    assert files["ca.crt"] == b"CA"
    assert files["namespace"] == b"ns"
    return files["token"].decode()


async def test_a_token_seen_issued_is_renewed_at_80_percent_of_its_life_into_the_instance_volume() -> None:
    clock, cloud = Clock(), Cloud()
    kube = Kube(clock, life=600)
    web = pod()
    view = book.View(pods={"ns/web": web}, states={})
    r = renewer(clock, kube, cloud, view)
    r.on_pod("ns/web", web)
    # The reconciler requested the create's token; the instance then appears.
    first = await tokens.request(kube, web, "", 600)  # type: ignore[arg-type]
    r.issued(web, first)
    view.states["uid-1"] = running("uid-1", created_at=clock.now)
    assert r.schedule.due("ns/web") == pytest.approx(clock.now + 480, abs=1)
    task = asyncio.create_task(r.run())
    try:
        r.on_pod("ns/web", web)  # a status event: nothing to do before the due time
        clock.now += 470
        assert r.schedule.next() > clock.now  # not due yet
        clock.now += 11
        r.wake()
        await until(lambda: r.renewals == 1, within=5, what="the renewal")
        [update] = cloud.updates
        assert update[0] == "i-1"
        assert token_of(update) != first.token
        assert update[2].startswith("uid-1-")
        path, body = kube.requests[-1]
        assert path == "/api/v1/namespaces/ns/serviceaccounts/default/token"
        assert body["spec"]["boundObjectRef"]["uid"] == "uid-1"
        # The next renewal follows the new token's life.
        assert r.schedule.due("ns/web") == pytest.approx(clock.now + 480, abs=2)
        clock.now += 481
        r.wake()
        await until(lambda: r.renewals == 2, within=5, what="the second renewal")
        assert len({token_of(u) for u in cloud.updates}) == 2
    finally:
        task.cancel()


async def test_a_failed_update_is_retried_with_the_same_files_and_client_token() -> None:
    clock, cloud = Clock(), Cloud()
    kube = Kube(clock, life=600)
    web = pod()
    view = book.View(pods={"ns/web": web}, states={"uid-1": running("uid-1")})  # created_at unknown: renew now
    r = renewer(clock, kube, cloud, view)
    cloud.fail = [errors.Unavailable("throttled", code="Throttling", retry_after=30.0)]
    r.on_pod("ns/web", web)
    task = asyncio.create_task(r.run())
    try:
        await until(lambda: cloud.fail == [] and r.schedule.due("ns/web") is not None, within=5, what="a retry")
        assert r.schedule.due("ns/web") >= clock.now + 30  # not before the cloud's hint
        clock.now += 31
        r.wake()
        await until(lambda: r.renewals == 1, within=5, what="the renewal after the retry")
        assert len(kube.requests) == 1  # one TokenRequest: the retry resent what was built
    finally:
        task.cancel()


async def test_after_a_restart_a_young_instance_waits_and_an_old_one_is_renewed_once() -> None:
    clock, cloud = Clock(), Cloud()
    kube = Kube(clock, life=3607)
    young, old = pod("young", uid="u-young", seconds=3607), pod("old", uid="u-old", seconds=3607)
    states = {"u-young": running("u-young", clock.now - 600), "u-old": running("u-old", clock.now - 5 * HOUR)}
    view = book.View(pods={"ns/young": young, "ns/old": old}, states=states)
    r = renewer(clock, kube, cloud, view)
    r.on_pod("ns/young", young)
    r.on_pod("ns/old", old)
    task = asyncio.create_task(r.run())
    try:
        await until(lambda: r.renewals == 1, within=5, what="the old instance's renewal")
        assert len(kube.requests) == 1
        assert r.schedule.due("ns/young") == pytest.approx(clock.now - 600 - tokens.CREATE_MARGIN + 0.8 * HOUR)
        assert r.schedule.due("ns/old") == pytest.approx(clock.now + 0.8 * 3607, abs=2)
    finally:
        task.cancel()


def test_pods_without_token_volumes_cost_nothing_and_deleted_pods_leave_nothing_behind() -> None:
    clock = Clock()
    view = book.View(pods={}, states={})
    r = renewer(clock, Kube(clock, 600), Cloud(), view)
    for n in range(100):
        r.on_pod(f"ns/plain-{n}", pod(f"plain-{n}", uid=f"p{n}", token=False))
    assert r.footprint == 0
    for n in range(100):
        p = pod(f"t-{n}", uid=f"t{n}")
        r.on_pod(p.key, p)
        r.issued(p, tokens.Issued("", 600, "tok", 600.0))
    assert len(r.schedule) == 100
    for n in range(100):
        gone = pod(f"t-{n}", uid=f"t{n}")
        if n % 2:
            r.on_pod(gone.key, None)  # deleted
        else:  # being deleted (deletionTimestamp set): no renewal either
            deleting = msgspec.structs.replace(
                gone, metadata=msgspec.structs.replace(gone.metadata, deletion_timestamp="2026-01-01T00:00:00Z")
            )
            r.on_pod(gone.key, deleting)
    assert len(r.schedule) == 0
    assert r.footprint <= 16  # stale heap entries at most, before its next rebuild
    # A token issued for a pod no longer watched is not kept either.
    r.issued(pod("t-1", uid="t1"), tokens.Issued("", 600, "tok", 600.0))
    assert len(r.schedule) == 0
    assert r.footprint <= 16


def test_a_new_pod_of_the_same_name_starts_afresh() -> None:
    clock = Clock()
    r = renewer(clock, Kube(clock, 600), Cloud(), book.View(pods={}, states={}))
    first = pod(uid="one")
    r.on_pod(first.key, first)
    r.issued(first, tokens.Issued("", 600, "tok", 600.0))
    assert r.schedule.due(first.key) == pytest.approx(clock.now + 480)
    second = pod(uid="two")
    r.on_pod(second.key, second)
    assert len(r.schedule) == 1  # the first pod's entry is gone
    assert r.schedule.due(second.key) == clock.now  # looked at now: its instance tells what to do


async def test_the_events_of_a_new_pod_do_not_bring_its_renewal_forward() -> None:
    clock, cloud = Clock(), Cloud()
    kube = Kube(clock, life=600)
    web = pod()
    view = book.View(pods={"ns/web": web}, states={})
    r = renewer(clock, kube, cloud, view)
    task = asyncio.create_task(r.run())
    try:
        r.on_pod("ns/web", web)  # before its create: looked at, then left until its next event
        await until(lambda: "ns/web" not in r.schedule, within=5, what="the first look")
        first = await tokens.request(kube, web, "", 600)  # type: ignore[arg-type]
        r.issued(web, first)  # the reconciler's create
        view.states["uid-1"] = running("uid-1", created_at=clock.now)
        r.on_pod("ns/web", web)  # its status event
        assert r.schedule.due("ns/web") == pytest.approx(clock.now + 480, abs=1)
        assert cloud.updates == []
    finally:
        task.cancel()


class SlowCloud(Cloud):
    """Answers an update only once ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.go = asyncio.Event()
        self.answered = False

    async def update_volumes(
        self, instance_id: str, volumes: Sequence[models.VolumeSpec], *, client_token: str
    ) -> None:
        self.entered.set()
        await self.go.wait()
        try:
            await super().update_volumes(instance_id, volumes, client_token=client_token)
        finally:
            self.answered = True


@pytest.mark.parametrize("fails", [False, True])
async def test_a_pod_deleted_during_its_renewal_leaves_nothing_behind(fails: bool) -> None:
    clock, cloud = Clock(), SlowCloud()
    web = pod()
    view = book.View(pods={"ns/web": web}, states={"uid-1": running("uid-1")})  # no creation time: renewed now
    r = renewer(clock, Kube(clock, life=600), cloud, view)
    if fails:
        cloud.fail = [errors.Unavailable("503", code="ServiceUnavailable")]
    r.on_pod("ns/web", web)
    task = asyncio.create_task(r.run())
    try:
        await asyncio.wait_for(cloud.entered.wait(), timeout=5)
        del view.pods["ns/web"]
        r.on_pod("ns/web", None)
        cloud.go.set()
        await until(lambda: cloud.answered, within=5, what="the update answered")
        # (the worker handled the answer in the step that set it: no await between the two)
        assert r.renewals == (0 if fails else 1)
        assert not task.done()  # the worker lives on
        assert len(r.schedule) == 0
        assert r.footprint <= 16
    finally:
        task.cancel()


class Refusing:
    """The TokenRequest endpoint answering with one error, as the API server words it."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body

    async def create(self, path: str, body: Any) -> bytes:
        raise client._error(self.status, json.dumps(self.body).encode(), {}, f"POST {path}")


POD_NOT_YET = {  # NodeRestriction's informer has not seen the pod yet
    "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
    "message": 'pod "web" not found', "details": {"name": "web", "kind": "pod"},
}  # fmt: skip
GRAPH_NOT_YET = {  # the Node authorizer's graph has not been told of the pod yet
    "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'serviceaccounts "default" is forbidden: User "system:node:n" cannot create resource '
    '"serviceaccounts/token" in API group "" in the namespace "ns": node: no relationship found between '
    "node 'n' and this object",
    "details": {"name": "default", "kind": "serviceaccounts"},
}  # fmt: skip
NOT_YET_BOUND = {  # NodeRestriction's informer has the pod, not yet its binding to this node
    "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a '
    "different node",
    "details": {"name": "default", "kind": "serviceaccounts"},
}  # fmt: skip
STILL_THE_OLD_POD = {  # ... or still the pod of the same name this one replaced
    "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'serviceaccounts "default" is forbidden: the UID in the bound object reference (uid-1) does not '
    "match the UID in record. The object might have been deleted and then recreated",
    "details": {"name": "default", "kind": "serviceaccounts"},
}  # fmt: skip
NO_ACCOUNT = {
    "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
    "message": 'serviceaccounts "default" not found', "details": {"name": "default", "kind": "serviceaccounts"},
}  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    [(404, POD_NOT_YET), (403, GRAPH_NOT_YET), (403, NOT_YET_BOUND), (403, STILL_THE_OLD_POD)],
    ids=["pod-not-found", "no-relationship", "not-yet-bound", "still-the-old-pod"],
)
async def test_a_token_refused_while_the_api_server_catches_up_with_the_pod_is_retried_later_not_missing(
    answer: tuple[int, dict[str, Any]],
) -> None:
    """In a burst the API server's own watches lag: a pod we watch may be unknown a second longer to
    NodeRestriction or to the Node authorizer. That is no missing service account (a false
    CreateContainerConfigError, a Warning and a status write for each such pod): retried soon."""
    with pytest.raises(errors.Unavailable) as raised:
        await tokens.request(Refusing(*answer), pod(), "", 600)  # type: ignore[arg-type]
    assert raised.value.code == "PodNotYetKnown"
    assert "not caught up" in raised.value.message


async def test_a_missing_service_account_is_still_missing_and_other_refusals_stay_refusals() -> None:
    with pytest.raises(spec.Missing):
        await tokens.request(Refusing(404, NO_ACCOUNT), pod(), "", 600)  # type: ignore[arg-type]
    other = {**GRAPH_NOT_YET, "message": 'serviceaccounts "default" is forbidden: no'}
    with pytest.raises(errors.Forbidden):
        await tokens.request(Refusing(403, other), pod(), "", 600)  # type: ignore[arg-type]
