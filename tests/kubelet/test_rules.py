"""The kubelet API's pure rules: authorization attributes, log query validation, exit Status."""

from __future__ import annotations

import datetime

import pytest
from aiohttp import web
from multidict import MultiDict

from vnode.kubelet import auth, remotecommand, server

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/containerLogs/ns/p/c", ("get", ("proxy",))),
        ("GET", "/exec/ns/p/c", ("get", ("proxy",))),
        ("POST", "/exec/ns/p/c", ("create", ("proxy",))),
        ("GET", "/portForward/ns/p", ("get", ("proxy",))),
        ("GET", "/stats/summary", ("get", ("stats",))),
        ("GET", "/metrics/resource", ("get", ("metrics",))),
        ("GET", "/metrics", ("get", ("metrics",))),
        ("GET", "/logs/syslog", ("get", ("log",))),
        ("GET", "/pods", ("get", ("pods", "proxy"))),
        ("GET", "/healthz", ("get", ("healthz", "proxy"))),
        ("GET", "/statsfoo", ("get", ("proxy",))),
    ],
)
def test_paths_map_to_the_kubelets_subresources(method: str, path: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert auth.attributes_for(method, path) == expected


def test_a_client_certificate_names_user_and_groups() -> None:
    peer = {"subject": ((("commonName", "kube-apiserver-kubelet-client"),), (("organizationName", "system:masters"),))}
    user = auth.user_from_peercert(peer)
    assert user == auth.User("kube-apiserver-kubelet-client", ("system:masters", "system:authenticated"))
    assert auth.user_from_peercert({}) is None


def test_log_query_is_parsed_like_the_api_server_sends_it() -> None:
    query = MultiDict(tailLines="3", sinceSeconds="60", timestamps="true", limitBytes="10", follow="true", stream="All")
    parsed = server.parse_log_query(query, NOW)
    assert parsed == server.LogQuery(3, NOW - datetime.timedelta(seconds=60), True, 10, False, True)
    since = server.parse_log_query(MultiDict(sinceTime="2026-11-28T11:00:00Z"), NOW).since
    assert since == datetime.datetime(2026, 11, 28, 11, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize("seconds", ["64000000000", str(2**62)])
def test_a_since_longer_ago_than_the_epoch_is_the_whole_log(seconds: str) -> None:
    """Found by tests/fuzz/test_kubelet_api.py: the subtraction raised OverflowError, a 500."""
    since = server.parse_log_query(MultiDict(sinceSeconds=seconds), NOW).since
    assert since == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "query",
    [
        {"tailLines": "x"},
        {"tailLines": "-1"},
        {"limitBytes": "0"},
        {"sinceSeconds": "5", "sinceTime": "2026-11-28T11:00:00Z"},
        {"sinceTime": "yesterday"},
        {"stream": "Stderr"},
    ],
)
def test_bad_log_queries_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(web.HTTPBadRequest):
        server.parse_log_query(MultiDict(query), NOW)


def test_exit_codes_become_the_status_kubectl_decodes() -> None:
    assert remotecommand.exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = remotecommand.exit_status(3)
    assert (failed["status"], failed["reason"]) == ("Failure", "NonZeroExitCode")
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert remotecommand.exit_status(-9)["details"]["causes"][0]["message"] == "137"  # SIGKILL, as a shell says


def test_a_terminal_has_no_separate_stderr() -> None:
    options = remotecommand.Options.from_query({"input": "1", "output": "1", "error": "1", "tty": "1"})
    assert options == remotecommand.Options(stdin=True, stdout=True, stderr=False, tty=True)
