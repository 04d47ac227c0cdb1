"""Build the Kubernetes control plane and etcd from their Go modules, into a per-version cache.

No registry ships kube-apiserver and these machines run no containers, so the binaries are
compiled from source fetched through the Go module proxy. ``go install
k8s.io/kubernetes/cmd/...@vX`` is refused because k8s.io/kubernetes replaces its staging
modules with local paths; a small wrapper module that requires k8s.io/kubernetes and points
every staging module at its published ``v0.Y.Z`` twin builds fine. etcd gets the same wrapper.

The cache lives outside the repository (``$VNODE_CACHE`` or ``~/.cache/vnode``) under
``k8s/<version>/``, and is complete only once its ``.complete`` stamp exists. Each build works
in a fresh temporary directory and renames into place under an exclusive file lock, so two
builds started at once never see each other's half-written binaries.

This module uses the standard library only: ``make`` calls it before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.4"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.21.4"

# Go tools the tests and the playground use, built into the cache by `make binaries`.
METRICS_SERVER_VERSION = "v0.9.0"
TOOLS = (
    ("kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION),
    ("helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION),
    ("metrics-server", "sigs.k8s.io/metrics-server/cmd/metrics-server", METRICS_SERVER_VERSION),
)

# virtual-kubelet's importable e2e suite, compiled from the test module tests/vke2e (go.mod pins it).
VK_E2E_VERSION = "v1.14.1"
VK_E2E_MODULE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vke2e"

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_BINARIES = ("etcd",)


class BuildError(RuntimeError):
    """A binary could not be built; the message names the step and carries Go's output."""


def cache_root() -> pathlib.Path:
    """Where built binaries live: ``$VNODE_CACHE``, else ``$XDG_CACHE_HOME/vnode``, else ``~/.cache/vnode``."""
    if explicit := os.environ.get("VNODE_CACHE"):
        return pathlib.Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "vnode"


def bin_dir(version: str = KUBERNETES_VERSION) -> pathlib.Path:
    """The directory holding the control-plane binaries of one Kubernetes release and its etcd."""
    return cache_root() / "k8s" / f"{version}-etcd-{ETCD_VERSION}"


def tool_dir(name: str, version: str) -> pathlib.Path:
    """The directory of a plain ``go install``-able tool (kwok, helm) at one version."""
    return cache_root() / "tools" / name / version


def is_complete(directory: pathlib.Path) -> bool:
    return (directory / ".complete").exists()


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"})
    return env


def _run(cmd: list[str], cwd: pathlib.Path, step: str) -> str:
    print(f"vnode build: {step}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"{step} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _minor(version: str) -> str:
    return version.lstrip("v").split(".")[1]


def staging_modules(release_gomod: str) -> list[str]:
    """The staging modules a k8s.io/kubernetes go.mod replaces with ``./staging/src/k8s.io/<name>``.

    Read from the release itself, since the list changes between releases (1.36 added ``streaming``).
    """
    return sorted(set(re.findall(r"^\s*k8s\.io/([\w.-]+)\s+=>\s+\./staging/", release_gomod, re.MULTILINE)))


def kubernetes_wrapper_gomod(version: str, staging_names: list[str]) -> str:
    """The wrapper module: require k8s.io/kubernetes and pin each staging module to v0.<minor>.<patch>."""
    staging = "v0." + ".".join(version.lstrip("v").split(".")[1:])
    lines = [
        "module vnode.local/k8sbuild",
        "",
        "go 1.24.0",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
        "replace (",
    ]
    lines += [f"\tk8s.io/{name} => k8s.io/{name} {staging}" for name in staging_names]
    lines += [")", ""]
    return "\n".join(lines)


def _tools_go(imports: list[str]) -> str:
    body = "\n".join(f'\t_ "{path}"' for path in imports)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n"


def _kube_ldflags(version: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor=1",
            f"-X {pkg}.gitMinor={_minor(version)}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={now}",
        ]
    return " ".join(["-s", "-w", *flags])


def _build_kubernetes(work: pathlib.Path, out: pathlib.Path, version: str) -> None:
    module = work / "k8s"
    module.mkdir()
    (module / "go.mod").write_text("module vnode.local/k8sbuild\n\ngo 1.24.0\n")
    fetched = _run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], module, f"fetch k8s.io/kubernetes {version}"
    )
    release_gomod = pathlib.Path(json.loads(fetched)["GoMod"]).read_text()
    names = staging_modules(release_gomod)
    if not names:
        raise BuildError(f"k8s.io/kubernetes {version}'s go.mod names no staging modules")
    (module / "go.mod").write_text(kubernetes_wrapper_gomod(version, names))
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_BINARIES]
    (module / "tools.go").write_text(_tools_go(packages))
    build = ["go", "build", "-trimpath", "-tags=selinux,notest,grpcnotrace,tools"]
    build += ["-ldflags", _kube_ldflags(version), "-o", str(out) + "/", *packages]
    _run(build, module, f"build {', '.join(KUBE_BINARIES)} {version} (the cold build takes 15-30 minutes)")


def _build_etcd(work: pathlib.Path, out: pathlib.Path, version: str) -> None:
    module = work / "etcd"
    module.mkdir()
    gomod = f"module vnode.local/etcdbuild\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 {version}\n"
    (module / "go.mod").write_text(gomod)
    (module / "tools.go").write_text(_tools_go(["go.etcd.io/etcd/server/v3"]))
    ldflags = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=vnode-{version}"
    build = ["go", "build", "-trimpath", "-tags=tools", "-ldflags", ldflags]
    build += ["-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"]
    _run(build, module, f"build etcd {version}")


def _publish(target: pathlib.Path, build: object, names: tuple[str, ...], version: str) -> pathlib.Path:
    """Build into a scratch directory next to ``target`` and rename it into place under a lock."""
    lock = target.parent / f".{target.name}.lock"
    with _locked(lock):
        if is_complete(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as scratch:
            work = pathlib.Path(scratch)
            out = work / "out"
            out.mkdir()
            started = time.monotonic()
            build(work, out, version)  # type: ignore[operator]
            for name in names:
                if not (out / name).is_file():
                    raise BuildError(f"the build finished but produced no {name}")
            (out / ".complete").write_text(f"built in {time.monotonic() - started:.0f}s\n")
            if target.exists():
                shutil.rmtree(target)
            out.rename(target)
    return target


def ensure_control_plane(version: str = KUBERNETES_VERSION) -> pathlib.Path:
    """Return the directory with kube-apiserver, -controller-manager, -scheduler, kubectl and etcd, building once."""
    target = bin_dir(version)
    if is_complete(target):
        return target

    def build(work: pathlib.Path, out: pathlib.Path, ver: str) -> None:
        _build_etcd(work, out, ETCD_VERSION)
        _build_kubernetes(work, out, ver)

    return _publish(target, build, (*KUBE_BINARIES, *ETCD_BINARIES), version)


def ensure_go_tool(name: str, package: str, version: str) -> pathlib.Path:
    """Build a Go command (kwok, helm, metrics-server) at the version of its module; returns the binary.

    ``package`` is the command's import path, which need not be its module's root
    (``helm.sh/helm/v3/cmd/helm`` lives in module ``helm.sh/helm/v3``): ``go get package@version``
    finds the module itself, and the module's own go.mod pins the rest.
    """
    target = tool_dir(name, version)
    if is_complete(target):
        return target / name

    def build(work: pathlib.Path, out: pathlib.Path, ver: str) -> None:
        module = work / "m"
        module.mkdir()
        (module / "go.mod").write_text(f"module vnode.local/{name}build\n\ngo 1.24.0\n")
        (module / "tools.go").write_text(_tools_go([package]))
        _run(["go", "get", f"{package}@{ver}"], module, f"fetch {package} {ver}")
        _run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / name), package],
            module,
            f"build {name} {ver}",
        )

    _publish(target, build, (name,), version)
    return target / name


def ensure_vk_e2e(module: pathlib.Path = VK_E2E_MODULE, version: str = VK_E2E_VERSION) -> pathlib.Path:
    """``go test -c`` of the vke2e module (virtual-kubelet's e2e suite): the binary, cached by the
    suite's version and a digest of the module's files, so an edited main_test.go rebuilds."""
    files = sorted(p for p in module.iterdir() if p.suffix in (".go", ".mod", ".sum"))
    if not any(p.name == "go.mod" for p in files):
        raise BuildError(f"{module} holds no go.mod")
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files)).hexdigest()[:12]
    target = tool_dir("vke2e", f"{version}-{digest}")
    if is_complete(target):
        return target / "vke2e.test"

    def build(work: pathlib.Path, out: pathlib.Path, ver: str) -> None:
        copy = work / "m"
        copy.mkdir()
        for path in files:
            shutil.copy(path, copy / path.name)
        command = ["go", "test", "-c", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "vke2e.test"), "."]
        _run(command, copy, f"build virtual-kubelet's e2e suite {ver} (go test -c)")

    _publish(target, build, ("vke2e.test",), version)
    return target / "vke2e.test"


# virtual-kubelet's own command with its mock provider: bench.scale's Go peer, at the e2e suite's version.
VK_PACKAGE = "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet"
VK_MODULE = "github.com/virtual-kubelet/virtual-kubelet"
# As shipped, its client keeps client-go's default of 5 requests/s (burst 10) per node, which alone would
# hold 10,000 pods to 20 status writes a second on 4 nodes. vnode sets no client-side limit and leaves
# fairness to the API server's priority and fairness; the build does the same for virtual-kubelet (a
# negative QPS turns client-go's limiter off), so the benchmark compares the controllers, not a throttle.
VK_UNTHROTTLE = (
    "\treturn kubernetes.NewForConfig(config)\n",
    "\tconfig.QPS = -1\n\treturn kubernetes.NewForConfig(config)\n",
)


def ensure_vk_mock(version: str = VK_E2E_VERSION) -> pathlib.Path:
    """Build ``virtual-kubelet`` (its mock provider inside) with its client's rate limit lifted; returns it."""
    target = tool_dir("virtual-kubelet-mock", version)
    if is_complete(target):
        return target / "virtual-kubelet"

    def build(work: pathlib.Path, out: pathlib.Path, ver: str) -> None:
        module = work / "m"
        module.mkdir()
        (module / "go.mod").write_text("module vnode.local/vkmockbuild\n\ngo 1.24.0\n")
        fetched = _run(["go", "mod", "download", "-json", f"{VK_MODULE}@{ver}"], module, f"fetch {VK_MODULE} {ver}")
        source = work / "virtual-kubelet"
        shutil.copytree(json.loads(fetched)["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
        client = source / "node" / "nodeutil" / "client.go"
        old, new = VK_UNTHROTTLE
        if old not in client.read_text():
            raise BuildError(f"{client.relative_to(source)} of {VK_MODULE} {ver} no longer reads as expected")
        client.write_text(client.read_text().replace(old, new, 1))
        requirement = f"require {VK_MODULE} {ver}\n\nreplace {VK_MODULE} => ../virtual-kubelet\n"
        (module / "go.mod").write_text(f"module vnode.local/vkmockbuild\n\ngo 1.24.0\n\n{requirement}")
        (module / "tools.go").write_text(_tools_go([VK_PACKAGE]))
        _run(["go", "mod", "tidy"], module, f"resolve {VK_PACKAGE} {ver}")
        command = ["go", "build", "-trimpath", "-tags=tools", "-ldflags", "-s -w", "-o", str(out / "virtual-kubelet")]
        _run([*command, VK_PACKAGE], module, f"build virtual-kubelet {ver} (mock provider, client unthrottled)")

    _publish(target, build, ("virtual-kubelet",), version)
    return target / "virtual-kubelet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vnode-build", description=__doc__.splitlines()[0])
    parser.add_argument("--print-dir", action="store_true", help="print the binaries' directory and exit")
    parser.add_argument("--tools", action="store_true", help="also build kwok, helm and metrics-server")
    parser.add_argument("--vk-e2e", action="store_true", help="only build virtual-kubelet's e2e suite; print its path")
    parser.add_argument(
        "--vk-mock", action="store_true", help="only build virtual-kubelet with its mock provider (make bench's peer)"
    )
    args = parser.parse_args(argv)
    if args.print_dir:
        print(bin_dir())
        return 0
    for wanted, ensure in ((args.vk_e2e, ensure_vk_e2e), (args.vk_mock, ensure_vk_mock)):
        if not wanted:
            continue
        try:
            print(ensure())
        except BuildError as exc:
            print(f"vnode build: {exc}", file=sys.stderr)
            return 1
        return 0
    started = time.monotonic()
    try:
        path = ensure_control_plane()
        if args.tools:
            for name, package, version in TOOLS:
                ensure_go_tool(name, package, version)
    except BuildError as exc:
        print(f"vnode build: {exc}", file=sys.stderr)
        return 1
    print(f"vnode build: control plane ready in {path} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
