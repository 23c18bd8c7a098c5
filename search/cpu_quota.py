"""How many CPUs this process may use: the cores it may run on, and a container's CPU quota.

A container limited to 2 CPUs on a 64-core host still sees 64 cores in its affinity; the
limit is a CFS quota on one of the cgroups on the process's path. ``usable_cpus`` is the
smaller of the affinity and the floor of the smallest quota on that path, at least 1:

- cgroup v2: ``cpu.max`` ("max 100000": none; "200000 100000": 2 CPUs) in each folder from
  the process's cgroup up to the root of the cgroup2 mount;
- cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of -1: none) in each
  folder from the process's cgroup up to the root of the mount holding the cpu controller.

The process's cgroups come from ``/proc/self/cgroup``, where they are mounted from
``/proc/self/mountinfo``. Anything missing or unreadable counts as no quota.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

PROC = Path("/proc/self")


def _unescape(field: str) -> str:
    """mountinfo writes a space in a path as \\040 (and tab, newline, backslash alike)."""
    for code, character in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, character)
    return field


def _mounts(mountinfo: str) -> list[tuple[str, str, Path, set[str]]]:
    """(file system type, root within it, mount point, super options) of each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        before, separator, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not separator or len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], _unescape(fields[3]), Path(_unescape(fields[4])),
                          set(tail[2].split(","))))
    return found


def _folders(mount_point: Path, mount_root: str, cgroup: str) -> list[Path]:
    """The process's cgroup folder under ``mount_point`` and each one above it, up to it."""
    relative = os.path.relpath(cgroup, mount_root) if cgroup.startswith(mount_root) else "."
    folder = mount_point / relative if relative != "." else mount_point
    if ".." in Path(relative).parts:  # outside what this mount shows: only its root is known
        folder = mount_point
    chain = [folder]
    while chain[-1] != mount_point and mount_point in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_quota(folder: Path) -> float | None:
    """cpu.max: "QUOTA PERIOD" in microseconds, or "max PERIOD"."""
    text = _read(folder / "cpu.max")
    parts = text.split() if text else []
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    """cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        quota_us, period_us = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cpu_quota(proc: Path = PROC) -> float | None:
    """The smallest CPU quota on this process's cgroup path, in CPUs (1.5 for 150 ms per
    100 ms), or None when none is set."""
    cgroups, mountinfo = _read(proc / "cgroup"), _read(proc / "mountinfo")
    if not cgroups or not mountinfo:
        return None
    v2_path, v1_paths = None, {}
    for line in cgroups.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2_path = path
        for controller in controllers.split(","):
            v1_paths[controller] = path
    quotas = []
    for kind, root, mount_point, options in _mounts(mountinfo):
        if kind == "cgroup2" and v2_path is not None:
            quotas += [_v2_quota(folder) for folder in _folders(mount_point, root, v2_path)]
        elif kind == "cgroup" and "cpu" in options and "cpu" in v1_paths:
            quotas += [_v1_quota(folder)
                       for folder in _folders(mount_point, root, v1_paths["cpu"])]
    known = [quota for quota in quotas if quota is not None]
    return min(known) if known else None


def affinity_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def usable_cpus(proc: Path = PROC) -> int:
    """The smaller of the affinity's cores and the floor of the CPU quota, at least 1."""
    cores, quota = affinity_cpus(), cpu_quota(proc)
    return cores if quota is None else max(1, min(cores, math.floor(quota)))
