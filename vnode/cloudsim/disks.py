"""The cloud disks instances mount (``DiskVolume``): which live instances hold each one.

A cloud disk is attached to one instance at a time (ECI: "not shared: one instance per disk"),
so a create or a start mounting a disk that another instance still holds (one that is not
finished, stopped or gone) is refused with ``errors.DiskInUse``, and nothing is made.
"""

from __future__ import annotations

from collections.abc import Mapping

from vnode.cloudsim import errors, model

__all__ = ["Disks"]


class Disks:
    def __init__(self) -> None:
        self.holders: dict[str, dict[str, None]] = {}  # disk ID -> the live instances that mount it

    def add(self, inst: model.Instance) -> None:
        for disk in inst.disks():
            self.holders.setdefault(disk.disk_id, {})[inst.id] = None

    def remove(self, inst: model.Instance) -> None:
        for disk in inst.disks():
            holders = self.holders.get(disk.disk_id, {})
            holders.pop(inst.id, None)
            if not holders:
                self.holders.pop(disk.disk_id, None)

    def check(self, spec: model.InstanceSpec, instance_id: str, live: Mapping[str, model.Instance]) -> None:
        """Refuse a disk of ``spec`` attached to another instance that is not idle."""
        for volume in spec.volumes:
            if volume.type != "DiskVolume":
                continue
            for other in self.holders.get(volume.disk_id, {}):
                holder = live[other]
                if other != instance_id and holder.status not in model.IDLE:
                    raise errors.DiskInUse(
                        f"The disk {volume.disk_id} is attached to the container group {other} "
                        f"({holder.status}); a disk is attached to one instance at a time."
                    )

    def clear(self) -> None:
        self.holders.clear()
