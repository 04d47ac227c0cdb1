"""ECI's interactive exec (``ExecContainerCommand`` with ``Sync=false``) between the provider and the simulator.

The provider asks for a WebSocket URI and streams over it (``vnode/provider/eci/exec_socket.py``);
the simulator serves it (``vnode/cloudsim/eci_exec.py``): stdin, a terminal, resizes, exit codes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.cloudsim.conftest import Sim, running
from tests.provider.eci_fixtures import eci_settings, spec
from tests.provider.fake_streams import FakeStreams, started
from vnode import errors
from vnode.provider import streams
from vnode.provider.eci import provider as eci


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running(tmp_path_factory.mktemp("eci-interactive-sim"), profile="fast") as sim:
        yield sim


@pytest.fixture
async def provider(sim: Sim) -> AsyncIterator[eci.EciProvider]:
    provider = eci.EciProvider(eci_settings(sim))
    try:
        yield provider
    finally:
        await provider.close()


async def _running(sim: Sim, provider: eci.EciProvider, name: str) -> str:
    return await started(sim, provider, spec(name))


async def test_stdin_streams_through_the_interactive_websocket(sim: Sim, provider: eci.EciProvider) -> None:
    instance = await _running(sim, provider, "cat")
    session = FakeStreams([b"hello\n", b"world\n"])
    code = await provider.exec_stream(instance, "app", ["cat"], session, tty=False)
    assert (code, bytes(session.out)) == (0, b"hello\nworld\n")


async def test_a_terminal_gets_its_resize_and_the_shell_its_exit_code(sim: Sim, provider: eci.EciProvider) -> None:
    instance = await _running(sim, provider, "tty")
    session = FakeStreams([b"stty size\n", b'echo "a b"\n', b"exit 4\n"], [streams.TerminalSize(120, 40)])
    code = await provider.exec_stream(instance, "app", ["sh"], session, tty=True)
    assert code == 4
    assert b"40 120\r\n" in session.out
    assert b"a b\r\n" in session.out
    assert session.out.startswith(b"# ")


async def test_without_stdin_or_terminal_the_output_and_exit_code_come_through_the_socket(
    sim: Sim, provider: eci.EciProvider
) -> None:
    instance = await _running(sim, provider, "sync")
    session = FakeStreams([], stdin=False)
    code = await provider.exec_stream(instance, "app", ["sh", "-c", "echo out; exit 2"], session, tty=False)
    assert (code, bytes(session.out)) == (2, b"out\n")


async def test_an_unknown_program_fails_like_a_shell(sim: Sim, provider: eci.EciProvider) -> None:
    instance = await _running(sim, provider, "unknown")
    session = FakeStreams([b"data"])
    code = await provider.exec_stream(instance, "app", ["rsync", "--server", "."], session, tty=False)
    assert code == 127
    with pytest.raises(errors.NotFound):
        await provider.exec_stream("eci-doesnotexist", "app", ["cat"], FakeStreams([b"x"]), tty=False)


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


async def test_kubectl_cp_in_and_out_goes_through_tar(sim: Sim, provider: eci.EciProvider) -> None:
    """What ``kubectl cp`` runs, both ways: the files copied in come back out, a missing one fails as
    GNU tar does."""
    instance = await _running(sim, provider, "cp")
    archive = _tar({"report.txt": b"hello\n", "dir/data.bin": bytes(range(256)) * 40})
    chunks = [archive[i : i + 4096] for i in range(0, len(archive), 4096)]
    into = ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp/in"]
    assert await provider.exec_stream(instance, "app", into, FakeStreams(chunks), tty=False) == 0
    out = FakeStreams([], stdin=False)
    assert await provider.exec_stream(instance, "app", ["tar", "cf", "-", "/tmp/in"], out, tty=False) == 0
    with tarfile.open(fileobj=io.BytesIO(bytes(out.out))) as got:
        copied = {m.name: got.extractfile(m).read() for m in got.getmembers()}  # type: ignore[union-attr]
    assert copied == {"tmp/in/dir/data.bin": bytes(range(256)) * 40, "tmp/in/report.txt": b"hello\n"}
    shown = FakeStreams([], stdin=False)
    assert await provider.exec_stream(instance, "app", ["cat", "/tmp/in/report.txt"], shown, tty=False) == 0
    assert bytes(shown.out) == b"hello\n"
    missing = FakeStreams([], stdin=False)
    assert await provider.exec_stream(instance, "app", ["tar", "cf", "-", "/nope"], missing, tty=False) == 2
    assert b"/nope: Cannot stat: No such file or directory" in missing.err
