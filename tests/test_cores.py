"""emoforge.cores: binding a worker process to one core, and when not to."""

from __future__ import annotations

import os
import subprocess
import sys

from emoforge import cores


def test_a_process_binds_all_its_threads_and_later_ones_to_its_core():
    """pin_to_core, run in a child process (it changes the process it runs in): a thread
    started before and one started after end up on the one core."""
    core = max(os.sched_getaffinity(0))
    code = f"""
import os, threading
from emoforge.cores import pin_to_core
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()
pin_to_core({core})
seen = []
after = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0))); after.start(); after.join()
print(sorted({{tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir('/proc/self/task')}}), seen[0] == {{{core}}})
stop.set()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [f"[({core},)]", "True"]


def test_workers_get_cores_round_robin_and_none_under_a_cpu_quota(monkeypatch):
    usable = cores.usable_cores()
    monkeypatch.setattr(cores, "under_cpu_quota", lambda: False)
    assert cores.cores_for_workers(3, cpus=1) == [usable[0]] * 3
    assert cores.cores_for_workers(2 * len(usable)) == usable + usable
    monkeypatch.setattr(cores, "under_cpu_quota", lambda: True)  # a container's CPU limit
    assert cores.cores_for_workers(2) == [None, None]


def test_a_cpu_quota_is_read_from_the_cgroup(tmp_path):
    assert not cores.under_cpu_quota(str(tmp_path))  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("200000 100000\n")  # cgroup v2: 2 CPUs' worth
    assert cores.under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert not cores.under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # cgroup v1, no quota
    assert not cores.under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cores.under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("unreadable\n")
    assert not cores.under_cpu_quota(str(tmp_path))
