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

    def fake_label_frames(frames, info, audio_16k, out_dir, video_id, source, config, shot_starts=None, models=None):
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


def test_a_sources_spans_go_to_the_worker_that_has_its_decode_open_while_it_has_room():
    from emoforge.curation.pipeline import _Pool

    pool = _Pool(["a", "b"], max_in_flight=2)
    submit = lambda key=None: pool.submit(lambda actor: actor, key=key)[0]
    assert [submit(key) for key in ("s1", "s1", "s1", "s2")] == ["a", "a", "b", "b"]  # s1 stays on a until a is full
    assert not pool.has_room()
    pool.release("a"), pool.release("b")
    assert submit("s1") == "a"  # a's last span was s1's (b's was s2's)
    pool.release("a"), pool.release("a")
    assert submit("s3") == "a" and submit() == "a"  # new work: the least busy


def test_a_worker_reads_a_sources_spans_through_one_decode_per_pass_and_opens_the_next_sources(tmp_path, monkeypatch):
    import emoforge.labeling.label as label_module

    sources = [tmp_path / "one.mp4", tmp_path / "two.mp4"]
    for source in sources:
        _write_source(source, n_frames=75)

    class _Rejected:
        ok, meta = False, {"reason": "stub"}

    def fake_label_frames(frames, *args, **kwargs):
        list(frames)
        return _Rejected()

    monkeypatch.setattr(label_module, "label_frames", fake_label_frames)
    worker, probe = SpanWorker(CurationConfig()), {"display_rotation_deg": 0, "width": 160, "height": 96}
    for source, (start, stop) in [(sources[0], (0, 25)), (sources[0], (30, 50)), (sources[1], (10, 40))]:
        span = {"span_id": f"s-{start:07d}-{stop:07d}", "start_frame": start, "stop_frame": stop,
                "start_s": start / 25, "end_s": stop / 25, "scene_index": 0}
        assert worker.process("s", str(source), span, probe, {}, str(tmp_path / "out"))["status"] == "rejected"
        decoder = worker._decoders["label"]
        assert decoder.source == source and decoder.seeks == 1  # the second span went on from the first
