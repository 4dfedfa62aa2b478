"""SpanWorker: a span is one scene of the scan, so the labeler is told its only shot starts at frame 0."""

from __future__ import annotations

from pathlib import Path

from emoforge.curation.config import CurationConfig
from emoforge.curation.process import SpanWorker

from test_normalise import _write_source


def test_a_span_is_labelled_as_one_known_shot(tmp_path, monkeypatch):
    import emoforge.labeling.label as label_module

    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=50)
    calls = []

    class _Rejected:
        ok, meta = False, {"reason": "stub"}

    def fake_label_video(path, out_dir, config, shot_starts=None, overwrite=False):
        calls.append({"path": Path(path), "shot_starts": shot_starts})
        return _Rejected()

    monkeypatch.setattr(label_module, "label_video", fake_label_video)
    span = {"span_id": "s-0000010-0000040", "start_frame": 10, "stop_frame": 40, "start_s": 0.4, "end_s": 1.6, "scene_index": 0}
    probe = {"display_rotation_deg": 0, "width": 160, "height": 96}
    result = SpanWorker(CurationConfig()).process("s", str(source), span, probe, {}, str(tmp_path / "out"))
    assert result["status"] == "rejected" and result["reason"] == "labeling: stub"
    assert calls == [{"path": tmp_path / "out" / "work" / "s" / "s-0000010-0000040.mkv", "shot_starts": [0]}]


def test_an_actor_binds_all_its_threads_and_later_ones_to_its_core():
    """pin_to_core, run in a child process (it changes the process it runs in): a thread
    started before and one started after end up on the one core."""
    import os
    import subprocess
    import sys

    core = max(os.sched_getaffinity(0))
    code = f"""
import os, threading
from emoforge.curation.process import pin_to_core
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


def test_actor_cores_round_robin_over_the_cpus_given_and_not_when_joining_a_cluster(monkeypatch):
    import os

    from emoforge.curation import pipeline
    from emoforge.curation.config import RayConfig

    cores = sorted(os.sched_getaffinity(0))
    monkeypatch.setattr(pipeline, "_under_cpu_quota", lambda: False)
    assert pipeline._actor_cores(RayConfig(), 1, 3) == [cores[0]] * 3  # one CPU: one core for all
    assert pipeline._actor_cores(RayConfig(), len(cores), 2 * len(cores)) == cores + cores
    assert pipeline._actor_cores(RayConfig(pin_cores=False), 2, 3) == [None] * 3
    assert pipeline._actor_cores(RayConfig(address="10.0.0.1:6379"), 2, 2) == [None, None]
    monkeypatch.setattr(pipeline, "_under_cpu_quota", lambda: True)  # a container's CPU limit
    assert pipeline._actor_cores(RayConfig(), 2, 2) == [None, None]


def test_a_cpu_quota_is_read_from_the_cgroup(tmp_path):
    from emoforge.curation.pipeline import _under_cpu_quota

    assert not _under_cpu_quota(str(tmp_path))  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("200000 100000\n")  # cgroup v2: 2 CPUs' worth
    assert _under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert not _under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # cgroup v1, no quota
    assert not _under_cpu_quota(str(tmp_path))
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert _under_cpu_quota(str(tmp_path))
