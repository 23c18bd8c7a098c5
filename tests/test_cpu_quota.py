"""``--workers auto`` in a container: the CPU quota on the process's cgroup path counts.

The readings run on sample /proc and cgroup files in tmp_path; one test (slow) puts a child
process in a real cgroup v1 with a quota of 1.5 CPUs and asks it how many workers it would
start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from search import cpu_quota, options
from tests.conftest import REPO


def _proc(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]]) -> Path:
    """A fake /proc/self: its cgroup file and a mountinfo of (type, root, point, options)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = [f"{30 + index} 23 0:{40 + index} {root} {point.replace(' ', chr(92) + '040')} "
             f"rw,relatime shared:1 - {kind} {kind} {extra}"
             for index, (kind, root, point, extra) in enumerate(mounts)]
    lines.insert(0, "23 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw")
    (proc / "mountinfo").write_text("\n".join(lines) + "\n")
    return proc


def _write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")


def test_v2_the_smallest_cpu_max_on_the_path_counts(tmp_path: Path) -> None:
    root = tmp_path / "cgroup v2"  # a space in the mount point, escaped in mountinfo
    _write(root / "box", cpu_max="250000 100000")  # 2.5 CPUs for the container
    _write(root / "box" / "job", cpu_max="max 100000")  # none of its own
    _write(root / "other", cpu_max="50000 100000")  # not on the path: does not count
    proc = _proc(tmp_path, "0::/box/job\n", [("cgroup2", "/", str(root), "rw")])
    assert cpu_quota.cpu_quota(proc) == 2.5
    _write(root / "box" / "job", cpu_max="150000 100000")
    assert cpu_quota.cpu_quota(proc) == 1.5


def test_v2_no_quota_anywhere_is_none(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    _write(root / "box", cpu_max="max 100000")
    (root / "job").mkdir()  # no cpu controller: no cpu.max at all
    assert cpu_quota.cpu_quota(_proc(tmp_path, "0::/box\n",
                                     [("cgroup2", "/", str(root), "rw")])) is None


def test_a_mount_that_shows_only_part_of_the_tree(tmp_path: Path) -> None:
    """A container without a cgroup namespace: the mount's root is the container's cgroup."""
    root = tmp_path / "cgroup"
    _write(root, cpu_max="200000 100000")
    _write(root / "inner", cpu_max="max 100000")
    proc = _proc(tmp_path, "0::/docker/abc/inner\n",
                 [("cgroup2", "/docker/abc", str(root), "rw")])
    assert cpu_quota.cpu_quota(proc) == 2.0


def test_v1_cfs_quota_over_period_and_minus_one_is_none(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    _write(cpu, cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    _write(cpu / "slice", cpu_cfs_quota_us="300000", cpu_cfs_period_us="100000")
    _write(cpu / "slice" / "task", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    cgroup = "5:memory:/elsewhere\n3:cpu,cpuacct:/slice/task\n0::/\n"
    mounts = [("cgroup", "/", str(tmp_path / "memory"), "rw,memory"),
              ("cgroup", "/", str(cpu), "rw,cpu,cpuacct"),
              ("cgroup2", "/", str(tmp_path / "unified"), "rw")]  # hybrid: no cpu.max
    assert cpu_quota.cpu_quota(_proc(tmp_path, cgroup, mounts)) == 3.0


@pytest.mark.parametrize("quota, expected", [(None, 8), (2.5, 2), (16.0, 8), (0.5, 1)])
def test_usable_cpus_is_the_floor_of_the_smaller_and_at_least_one(monkeypatch, quota,
                                                                   expected) -> None:
    monkeypatch.setattr(cpu_quota, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(cpu_quota, "cpu_quota", lambda proc=None: quota)
    assert cpu_quota.usable_cpus() == expected


def test_auto_workers_never_exceed_the_quota(monkeypatch) -> None:
    monkeypatch.setattr(cpu_quota, "affinity_cpus", lambda: 64)
    monkeypatch.setattr(cpu_quota, "cpu_quota", lambda proc=None: 2.0)
    readings = iter([(0, 0), (6400, 6400)])  # every core idle over the moment
    monkeypatch.setattr(options, "_cpu_times", lambda: next(readings))
    assert options.auto_workers(sample_seconds=0) == 2


def test_missing_or_garbled_files_are_no_quota(tmp_path: Path) -> None:
    assert cpu_quota.cpu_quota(tmp_path / "nothing") is None
    root = tmp_path / "unified"
    _write(root / "box", cpu_max="lots")
    assert cpu_quota.cpu_quota(_proc(tmp_path, "0::/box\n",
                                     [("cgroup2", "/", str(root), "rw")])) is None


@pytest.fixture
def v1_cpu_cgroup(tmp_path: Path):
    """A new cgroup v1 with a quota of 1.5 CPUs, under a nested one with none; removed after.
    Uses the mounted cpu controller, or mounts it; needs root."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the cgroup test needs root in CI")
        pytest.skip("creating a cgroup needs root")
    def cpu_mounts() -> list[tuple[str, str]]:  # (root, mount point) of v1's cpu controller
        return [(line.split()[3], line.split()[4]) for line in
                Path("/proc/self/mountinfo").read_text().splitlines()
                if " - cgroup " in line and "cpu" in line.split(" - ")[1].split()[2].split(",")]

    mounted = None
    if not cpu_mounts():
        mounted = tmp_path / "cpu"
        mounted.mkdir()
        done = subprocess.run(["mount", "-t", "cgroup", "-o", "cpu", "none", str(mounted)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot mount the cgroup v1 cpu controller: {done.stderr.strip()}")
    root, point = cpu_mounts()[0]
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().split()
               if "cpu" in line.split(":")[1].split(","))
    outer = Path(point) / os.path.relpath(own, root) / f"search-test-{uuid.uuid4().hex[:8]}"
    inner = outer / "job"
    try:
        inner.mkdir(parents=True)
        (outer / "cpu.cfs_period_us").write_text("100000")
        (outer / "cpu.cfs_quota_us").write_text("150000")
        yield inner
    finally:
        for folder in (inner, outer):
            if folder.exists():
                folder.rmdir()  # empty once the child has exited
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=False)


@pytest.mark.slow
def test_workers_auto_under_a_real_cgroup_v1_quota(v1_cpu_cgroup: Path) -> None:
    ask = ("from search import cpu_quota, options; "
           "print(cpu_quota.cpu_quota(), cpu_quota.usable_cpus(), options.auto_workers(0.1))")
    child = subprocess.run(
        ["sh", "-c", f'echo $$ > "{v1_cpu_cgroup}/cgroup.procs" && exec "$0" -c "$1"',
         sys.executable, ask], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    quota, usable, auto = child.stdout.split()
    assert float(quota) <= 1.5  # ours, or a smaller one the machine already had
    assert (usable, auto) == ("1", "1")
