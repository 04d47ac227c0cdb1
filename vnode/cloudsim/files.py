"""The files of the simulator's containers, as far as ``kubectl cp`` sees them: ``tar`` in and out.

The simulator runs no image, so a container has no file system of its own; ``kubectl cp`` only
needs ``tar``: ``tar -xmf - -C <dir>`` (with ``--no-same-permissions --no-same-owner`` under
``--no-preserve``) unpacks what it copies in, ``tar cf - <path>`` packs what it copies out, and ``cat <path>``
shows a file (a relative path is under the container's working directory). The
files copied in are kept per container, in memory (a restart of the simulator forgets them), and
the files of the instance's ConfigFileVolumes are there at their mount paths, so a configMap or
secret file can be copied out as from a real container. What is asked that is not there fails as
GNU tar fails (``tar: <path>: Cannot stat: No such file or directory``, exit 2).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import posixpath
import tarfile
from collections.abc import Container

from vnode.cloudsim import model

__all__ = ["Files", "TarCall", "parse"]

_FLAGS_IGNORED = ("--no-same-permissions", "--no-same-owner", "--preserve-permissions", "-p")


@dataclasses.dataclass(frozen=True)
class TarCall:
    create: bool  # c: pack ``paths``; else x: unpack stdin
    directory: str  # -C ("": the working directory; a relative one is under it)
    paths: tuple[str, ...]


def parse(argv: list[str]) -> TarCall | str:
    """A ``tar`` command line of ``kubectl cp``, or why it is not one the simulator runs."""
    words = [w for w in argv[1:] if w not in _FLAGS_IGNORED]
    mode, directory, paths, archive = "", "", [], ""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-C" and i + 1 < len(words):
            directory, i = words[i + 1], i + 2
            continue
        if word == "--":
            paths.extend(words[i + 1 :])
            break
        letters = word.lstrip("-") if (word.startswith("-") or not mode) and not paths else ""
        if letters and set(letters) <= set("cxmfvz"):
            mode += "".join(ch for ch in letters if ch in "cx")
            if "f" in letters and i + 1 < len(words):
                archive, i = words[i + 1], i + 2
                continue
        else:
            paths.append(word)
        i += 1
    if mode not in ("c", "x") or archive != "-":
        return "tar: the simulator runs only kubectl cp's tar (cf - PATH, or xf - -C DIR)"
    return TarCall(mode == "c", directory, tuple(paths))


class Files:
    """The files copied into each container (instance id, container name) -> path -> content."""

    def __init__(self) -> None:
        self._trees: dict[tuple[str, str], dict[str, bytes]] = {}

    @staticmethod
    def resolve(inst: model.Instance, container: str, path: str) -> str:
        """``path`` as the container sees it: a relative one is under its working directory ("/" if none)."""
        spec = next((c for c in inst.spec.containers if c.name == container), None)
        return posixpath.normpath(posixpath.join("/", spec.working_dir if spec is not None else "", path))

    def read(self, inst: model.Instance, container: str, path: str) -> bytes | None:
        """``cat``: a file's content, None if there is none."""
        return self.tree(inst, container).get(self.resolve(inst, container, path))

    def tree(self, inst: model.Instance, container: str) -> dict[str, bytes]:
        """Every file the container shows: its volumes' files at their mount paths, then what was copied in."""
        files: dict[str, bytes] = {}
        spec = next((c for c in inst.spec.containers if c.name == container), None)
        volumes = {v.name: v for v in inst.spec.volumes}
        for mount in spec.volume_mounts if spec is not None else ():
            volume = volumes.get(mount.name)
            for f in volume.files if volume is not None else ():
                files[posixpath.join(mount.mount_path, f.path)] = base64.b64decode(f.content)
        files.update(self._trees.get((inst.id, container), {}))
        return files

    def unpack(self, inst: model.Instance, container: str, call: TarCall, data: bytes) -> tuple[str, int]:
        """``tar -xf -``: keep the archive's regular files under ``call.directory``."""
        tree = self._trees.setdefault((inst.id, container), {})
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                for member in archive.getmembers():
                    target = self.resolve(inst, container, posixpath.join(call.directory, member.name))
                    if member.isfile():
                        handle = archive.extractfile(member)
                        tree[target] = handle.read() if handle is not None else b""
        except tarfile.TarError as exc:
            return f"tar: {exc}\n", 2
        return "", 0

    def pack(self, inst: model.Instance, container: str, call: TarCall) -> tuple[bytes, str, int]:
        """``tar cf - PATH...``: the files under each path, named as GNU tar names them (no leading /)."""
        tree, out, errors = self.tree(inst, container), io.BytesIO(), []
        with tarfile.open(fileobj=out, mode="w") as archive:
            for asked in call.paths:
                path = self.resolve(inst, container, posixpath.join(call.directory, asked))
                found = sorted(p for p in tree if p == path or p.startswith(path.rstrip("/") + "/"))
                if not found:
                    errors.append(f"tar: {asked}: Cannot stat: No such file or directory\n")
                shown = posixpath.normpath(asked).lstrip("/")  # GNU tar names members as asked, minus a leading /
                for name in found:
                    info = tarfile.TarInfo(shown + name[len(path) :])
                    info.size, info.mode = len(tree[name]), 0o644
                    archive.addfile(info, io.BytesIO(tree[name]))
        return out.getvalue(), "".join(errors), 2 if errors else 0

    def keep_only(self, live: Container[str]) -> None:
        """Forget the files of instances no longer live."""
        for key in [k for k in self._trees if k[0] not in live]:
            del self._trees[key]
