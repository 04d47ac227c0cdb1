"""Pure logic: spec rounding, prices, the V3 signature, token buckets, address pools, workloads."""

from __future__ import annotations

import decimal
import math

import pytest
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from darabonba.request import DaraRequest

from vnode.cloudsim import acs3, catalog, network, workloads


@pytest.mark.parametrize(
    ("asked", "runs_as"),
    [((7, 13), (8, 16)), ((2, 4), (2, 4)), ((0.1, 0.1), (0.25, 0.5)), ((2, 20), (4, 32)), ((64, 512), (64, 512))],
)
def test_requests_round_up_to_the_smallest_covering_spec(
    asked: tuple[float, float], runs_as: tuple[float, float]
) -> None:
    spec = catalog.round_up(*asked)
    assert (spec.cpu, spec.memory) == runs_as


@pytest.mark.parametrize("asked", [(65, 128), (64, 1024), (0, 1)])
def test_specs_beyond_the_catalog_are_refused(asked: tuple[float, float]) -> None:
    with pytest.raises(catalog.SpecError):
        catalog.round_up(*asked)


def test_price_is_per_second_on_the_spec() -> None:
    assert catalog.cost(catalog.Spec(16, 32), 120) == pytest.approx(120 * (16 * 0.0000077 + 32 * 0.00000096))


def test_signature_matches_what_the_official_sdk_computes() -> None:
    request = DaraRequest()
    request.method = "POST"
    request.pathname = "/"
    request.query = {"RegionId": "cn-hangzhou", "Container.1.Command.3": 'echo "a b"~*', "Tag.1.Value": "v w"}
    request.headers = {
        "host": "127.0.0.1:1234",
        "x-acs-action": "CreateContainerGroup",
        "x-acs-version": "2018-08-08",
        "x-acs-date": "2026-11-28T12:00:00Z",
        "x-acs-signature-nonce": "abc",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    header = OpenApiUtil.get_authorization(request, acs3.ALGORITHM, request.headers["x-acs-content-sha256"], "AK", "SK")
    auth = acs3.parse(header)
    canonical = acs3.canonical_request(
        "POST",
        "/",
        request.query.items(),
        request.headers,
        auth.signed_headers,
        request.headers["x-acs-content-sha256"],
    )
    assert acs3.verify("SK", auth, canonical)
    assert not acs3.verify("wrong", auth, canonical)


def test_malformed_authorization_is_rejected() -> None:
    with pytest.raises(acs3.SignatureError):
        acs3.parse("Bearer abc")
    with pytest.raises(acs3.SignatureError):
        acs3.parse(None)


def test_address_pool_allocates_lowest_first_exhausts_and_reuses() -> None:
    pool = network.AddressPool("10.0.0.0/29")  # 8 addresses, 3 reserved at the start, 1 at the end
    assert pool.capacity == 4
    taken = [pool.take() for _ in range(4)]
    assert taken == ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(network.AddressExhausted):
        pool.take()
    pool.give_back("10.0.0.4")
    assert pool.take() == "10.0.0.4"
    pool.exhausted = True
    pool.give_back("10.0.0.5")
    assert pool.free == 0
    with pytest.raises(network.AddressExhausted):
        pool.take()


def test_pi_is_really_computed() -> None:
    assert workloads.pi(1) == "3"
    assert workloads.pi(10) == "3.141592654"  # rounded, as Perl's bpi prints it
    assert workloads.pi(2000).startswith("3.14159265358979323846264338327950288419716939937510582097494459")
    decimals = workloads.pi(2000)[2:]
    assert decimals[761:767] == "999999"  # the Feynman point: six nines from the 762nd decimal
    assert workloads.pi(2000)[:-1] == _gauss_legendre_pi(2010)[:2000]  # an independent method agrees


@pytest.mark.parametrize(
    ("argv", "output", "code"),
    [
        (["sh", "-c", 'echo "a b"'], ("a b",), 0),
        (["sh", "-c", "exit 3"], (), 3),
        (["sh", "-c", "echo one && false || echo two; exit 4; echo never"], ("one", "two"), 4),
        (["/bin/sh", "-c", "nope"], ("sh: nope: not found",), 127),
        (["echo", "x", "y"], ("x y",), 0),
    ],
)
def test_the_tiny_shell(argv: list[str], output: tuple[str, ...], code: int) -> None:
    result = workloads.run_shell(argv)
    assert result is not None
    assert (result.output, result.exit_code) == (output, code)


def test_workload_catalog() -> None:
    assert workloads.behaviour("nginx:1.27", [], []).run_seconds is None
    assert workloads.behaviour("busybox", ["sleep", "5"], []).run_seconds == 5.0
    assert workloads.behaviour("busybox", ["sh", "-c", "exit 3"], []).exit_code == 3
    assert not workloads.known_image("ghcr.io/nobody/unheard-of:1")
    assert workloads.known_image("registry.k8s.io/pause:3.9")


def test_web_server_logs_are_computed_not_stored() -> None:
    web = workloads.behaviour("nginx", [], [])
    day = workloads.log_lines(web, 0.0, 86_400.0, interval=10.0, tail=3)
    assert len(day) == 3
    assert day[-1][0] == 86_400.0


def _gauss_legendre_pi(digits: int) -> str:
    with decimal.localcontext() as ctx:
        ctx.prec = digits + 10
        a, b, t, p = decimal.Decimal(1), 1 / decimal.Decimal(2).sqrt(), decimal.Decimal(1) / 4, decimal.Decimal(1)
        for _ in range(int(math.log2(digits)) + 3):
            a, b, t, p = (a + b) / 2, (a * b).sqrt(), t - p * ((a - b) / 2) ** 2, 2 * p
        return str((a + b) ** 2 / (4 * t))
