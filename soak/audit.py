"""What the API server's audit log says about the soak's daemons: requests per pod, fenced writes.

One pass over the log at the end of the run (its writes are batched, so it is read then).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import json
import pathlib

from soak import world as world_mod

WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclasses.dataclass(frozen=True)
class Fence:
    """A frozen daemon's account, and the window (epoch seconds) it ran fenced: resumed until killed."""

    account: str
    start: float
    end: float


@dataclasses.dataclass
class Findings:
    calm: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    rest: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    fenced_writes: list[str] = dataclasses.field(default_factory=list)


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def analyse(path: pathlib.Path, calm_until: float, fences: list[Fence]) -> Findings:
    """The daemons' requests (``verb resource``) before ``calm_until`` and after; writes in a fence."""
    found = Findings()
    prefix = f"system:serviceaccount:kube-system:{world_mod.STATEFULSET}-"
    marker = prefix.encode()
    with contextlib.suppress(OSError), path.open("rb") as handle:
        for line in handle:
            if marker not in line:
                continue
            with contextlib.suppress(KeyError, TypeError, ValueError):
                _count(found, json.loads(line), prefix, calm_until, fences)
    return found


def _count(found: Findings, event: dict[str, object], prefix: str, calm_until: float, fences: list[Fence]) -> None:
    user = str(event["user"]["username"])  # type: ignore[index]
    if not user.startswith(prefix) or event.get("stage", "ResponseComplete") != "ResponseComplete":
        return
    ref: dict[str, str] = event.get("objectRef") or {}  # type: ignore[assignment]
    what = ref.get("resource") or "?"
    if ref.get("subresource"):
        what += "/" + ref["subresource"]
    verb = str(event["verb"])
    at = _epoch(str(event["requestReceivedTimestamp"]))
    (found.calm if at < calm_until else found.rest)[f"{verb} {what}"] += 1
    account = user.rsplit(":", 1)[-1]
    if verb in WRITES and what != "leases":
        for fence in fences:
            if account == fence.account and fence.start <= at <= fence.end:
                status = (event.get("responseStatus") or {}).get("code")  # type: ignore[union-attr]
                found.fenced_writes.append(f"{account}: {verb} {event.get('requestURI')} -> {status}")
