"""SpanWorker: a span is labelled as read from the source, one known shot; actors' cores."""

from __future__ import annotations

import numpy as np

from emoforge.curation.config import CurationConfig
from emoforge.curation.process import SpanWorker

from test_span import _write_source


def test_a_span_is_labelled_from_the_source_as_one_known_shot(tmp_path, monkeypatch):
    import emoforge.labeling.label as label_module

    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=50)
    calls = []

    class _Rejected:
        ok, meta = False, {"reason": "stub"}

    def fake_label_frames(frames, info, audio_16k, out_dir, video_id, source, config, shot_starts=None):
        frames = list(frames)
        calls.append({"video_id": video_id, "shot_starts": shot_starts, "indices": [f.index for f in frames],
                      "times": [f.time_s for f in frames], "shape": frames[0].rgb.shape, "size": (info.width, info.height),
                      "audio": len(audio_16k), "span_s": source["span_s"]})
        return _Rejected()

    monkeypatch.setattr(label_module, "label_frames", fake_label_frames)
    span = {"span_id": "s-0000010-0000040", "start_frame": 10, "stop_frame": 40, "start_s": 0.4, "end_s": 1.6, "scene_index": 0}
    probe = {"display_rotation_deg": 0, "width": 160, "height": 96}
    result = SpanWorker(CurationConfig()).process("s", str(source), span, probe, {}, str(tmp_path / "out"))
    assert result["status"] == "rejected" and result["reason"] == "labeling: stub"
    assert calls == [{"video_id": "s-0000010-0000040", "shot_starts": [0], "indices": list(range(30)),
                      "times": list(np.arange(30) / 25), "shape": (96, 160, 3), "size": (160, 96),
                      "audio": 19200, "span_s": [0.4, 1.6]}]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # no intermediate file: the source is read


def test_actor_cores_round_robin_and_not_when_joining_a_cluster_or_not_pinning(monkeypatch):
    from emoforge import cores
    from emoforge.curation.config import RayConfig
    from emoforge.curation.pipeline import _actor_cores

    usable = cores.usable_cores()
    monkeypatch.setattr(cores, "under_cpu_quota", lambda: False)
    assert _actor_cores(RayConfig(), 1, 3) == [usable[0]] * 3  # one CPU: one core for all
    assert _actor_cores(RayConfig(), len(usable), 2 * len(usable)) == usable + usable
    assert _actor_cores(RayConfig(pin_cores=False), 2, 3) == [None] * 3
    assert _actor_cores(RayConfig(address="10.0.0.1:6379"), 2, 2) == [None, None]
