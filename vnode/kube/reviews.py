"""The answers of the API server's token, review and access-review calls (authentication.k8s.io,
authorization.k8s.io): what the kubelet API and the node's identity ask it, decoded by msgspec."""

from __future__ import annotations

import msgspec

from vnode.kube.objects import _S

__all__ = ["SelfSubjectReview", "SubjectAccessReview", "TokenRequest", "TokenReview", "UserInfo"]


class TokenRequestStatus(_S):
    token: str = ""
    expiration_timestamp: str | None = None


class TokenRequest(_S):
    """The answer to a ServiceAccount's ``token`` subresource."""

    status: TokenRequestStatus = msgspec.field(default_factory=TokenRequestStatus)


class UserInfo(_S):
    username: str = ""
    uid: str = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}


class TokenReviewStatus(_S):
    authenticated: bool = False
    user: UserInfo = msgspec.field(default_factory=UserInfo)
    error: str = ""


class TokenReview(_S):
    status: TokenReviewStatus = msgspec.field(default_factory=TokenReviewStatus)


class SelfSubjectReviewStatus(_S):
    user_info: UserInfo = msgspec.field(default_factory=UserInfo)


class SelfSubjectReview(_S):
    status: SelfSubjectReviewStatus = msgspec.field(default_factory=SelfSubjectReviewStatus)


class SubjectAccessReviewStatus(_S):
    allowed: bool = False
    denied: bool = False
    reason: str = ""


class SubjectAccessReview(_S):
    status: SubjectAccessReviewStatus = msgspec.field(default_factory=SubjectAccessReviewStatus)
