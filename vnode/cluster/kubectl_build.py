"""Build older kubectl releases for the compatibility matrix, into the per-version cache.

The playground's own kubectl comes with its control plane (``build.ensure_control_plane``).
The matrix (``tests/kubelet/test_kubectl_matrix.py``) also drives two older releases: 1.30, the
first whose exec, attach and cp speak WebSocket by default (its port-forward still SPDY), and
1.33, whose port-forward speaks WebSocket too. ``cmd/kubectl``
is a few lines over ``k8s.io/kubectl``, so this builds a small module of its own against the
``k8s.io/kubectl`` release of the same minor version rather than the whole ``k8s.io/kubernetes``
(minutes on a busy machine, once: the result lives in ``tools/kubectl/<version>/``). ``make test``
builds them first (``python -m vnode.cluster.kubectl_build``), outside any one test's timeout.
"""

from __future__ import annotations

import pathlib
import sys

from vnode.cluster import build

# kubectl release -> the staging modules' version (v1.X.Y is v0.X.Y there)
MATRIX_VERSIONS = ("v1.30.14", "v1.33.13")

_MAIN = """package main

import (
\t_ "k8s.io/client-go/plugin/pkg/client/auth"
\t"k8s.io/component-base/cli"
\t"k8s.io/kubectl/pkg/cmd"
\t"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
\tcommand := cmd.NewDefaultKubectlCommand()
\tif err := cli.RunNoErrOutput(command); err != nil {
\t\tutil.CheckErr(err)
\t}
}
"""


def _staging(version: str) -> str:
    return "v0." + ".".join(version.lstrip("v").split(".")[1:])


def _build(work: pathlib.Path, out: pathlib.Path, version: str) -> None:
    staging = _staging(version)
    module = work / "kubectl"
    module.mkdir()
    (module / "main.go").write_text(_MAIN)
    gomod = (
        "module vnode.local/kubectlbuild\n\ngo 1.22\n\n"
        f"require (\n\tk8s.io/kubectl {staging}\n\tk8s.io/component-base {staging}\n"
        f"\tk8s.io/client-go {staging}\n)\n"
    )
    (module / "go.mod").write_text(gomod)
    build._run(["go", "mod", "tidy"], module, f"resolve kubectl {version}")
    ldflags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor=1",
            f"-X {pkg}.gitMinor={build._minor(version)}",
        ]
    cmd = ["go", "build", "-trimpath", "-ldflags", " ".join(["-s", "-w", *ldflags]), "-o", str(out / "kubectl"), "."]
    build._run(cmd, module, f"build kubectl {version} (a few minutes, once)")


def ensure_kubectl(version: str) -> pathlib.Path:
    """The path of ``kubectl`` at ``version`` (the playground's own, or a cached older build)."""
    if version == build.KUBERNETES_VERSION:
        return build.ensure_control_plane(version) / "kubectl"
    directory = build._publish(build.tool_dir("kubectl", version), _build, ("kubectl",), version)
    return directory / "kubectl"


def main() -> int:
    """Build (or find cached) every kubectl release of the matrix."""
    try:
        for version in MATRIX_VERSIONS:
            print(f"vnode build: kubectl {version} ready: {ensure_kubectl(version)}", file=sys.stderr)
    except build.BuildError as exc:
        print(f"vnode build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
