"""Binding a worker process to one CPU core, for the areas that run one worker per core
(curation's Ray actors, ``emoforge label --workers``)."""

from __future__ import annotations

import os
from pathlib import Path


def pin_to_core(core: int | None) -> None:
    """Bind every thread of this process, and the threads they start later, to ``core``
    (None: leave the process as it is).

    A labeling or curation worker does one thing at a time on one core's worth of CPU; left
    free, its MediaPipe graph threads and its main thread are spread over the cores and pay
    in migrations and cold caches (the labeler alone on the 2-core VM: 50 fps per
    CPU-second unpinned, 56-63 pinned, docs/labeling.md)."""
    if core is None:
        return
    for thread in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(thread), {core})
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile


def usable_cores() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def cores_for_workers(workers: int, cpus: int | None = None) -> list[int | None]:
    """The core to bind each of ``workers`` worker processes to: round robin over the first
    ``cpus`` usable cores (None: all). All None under a CPU quota (a container's CPU limit:
    its cores are shared with other containers, and binding to the first few could crowd
    them)."""
    if under_cpu_quota():
        return [None] * workers
    cores = usable_cores()
    cores = cores[: max(1, cpus)] if cpus else cores
    return [cores[i % len(cores)] for i in range(workers)]


def under_cpu_quota(cgroup: str = "/sys/fs/cgroup") -> bool:
    """Whether this process's cgroup caps its CPU time (cgroup v2 ``cpu.max``, v1 CFS quota)."""
    for name in ("cpu.max", "cpu/cpu.cfs_quota_us", "cpu,cpuacct/cpu.cfs_quota_us"):
        try:
            quota = (Path(cgroup) / name).read_text().split()[0]
            return quota != "max" and int(quota) > 0
        except (OSError, IndexError, ValueError):
            continue
    return False
