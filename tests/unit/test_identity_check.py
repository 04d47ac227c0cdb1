"""``identity.check``: a refused or ignored impersonation ends the start naming the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vnode import errors
from vnode.kube import identity


class _Answers:
    """Stands in for the client's transport only: the answers of the SelfSubjectReview, in order."""

    def __init__(self, *answers: Exception | dict[str, Any]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def impersonating(self, user: str, groups: tuple[str, ...]) -> _Answers:
        return self

    async def create(self, path: str, body: Any) -> bytes:
        assert path == "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return json.dumps(answer).encode()


def _seen(user: str, *groups: str) -> dict[str, Any]:
    return {"status": {"userInfo": {"username": user, "groups": list(groups)}}}


async def test_a_refused_impersonation_or_an_ignored_one_is_a_configuration_error() -> None:
    refused = errors.Forbidden('users "system:node:vn-0" is forbidden: cannot impersonate', code="Forbidden")
    with pytest.raises(errors.ConfigError, match=r"daemon.maxReplicas.*VNODE_NODE_IDENTITY=false"):
        await identity.check(_Answers(refused), "vn-0")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="does not honour impersonation"):
        await identity.check(_Answers(_seen("system:serviceaccount:kube-system:vnode")), "vn-0")  # type: ignore[arg-type]
    await identity.check(_Answers(_seen("system:node:vn-0", "system:nodes")), "vn-0")  # type: ignore[arg-type]
