"""Probe rejects bad files with reasons; the scan finds the footage's cuts and faces."""

import json
from fractions import Fraction

import numpy as np
import pytest

from emoforge.curation.config import CurationConfig, ProbeConfig
from emoforge.curation.probe import probe_media


def _write(path, video=True, audio=True, seconds=1.0, size=(64, 48), silent=False, fps=10, container="mp4"):
    import av

    with av.open(str(path), mode="w", format=container) as out:
        vs = out.add_stream("libx264", rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height = size
            vs.pix_fmt = "yuv420p"
        aus = out.add_stream("aac", rate=16000) if audio else None
        if aus is not None:
            aus.layout = "mono"
        if vs is not None:
            for k in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), k * 10 % 255, np.uint8), format="rgb24")
                frame.pts = k
                frame.time_base = Fraction(1, fps)
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
        if aus is not None:
            n = int(seconds * 16000)
            samples = np.zeros(n, np.float32) if silent else (0.3 * np.sin(np.arange(n) * 0.2)).astype(np.float32)
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate = 16000
                frame.pts = start
                frame.time_base = Fraction(1, 16000)
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode(None):
                out.mux(packet)
    return path


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _sparse_ten_hours(path):
    """Ten hours of timeline in a few frames: two video frames 10 h apart, silent audio at each."""
    import av

    with av.open(str(path), mode="w", format="matroska") as out:
        vs = out.add_stream("libx264", rate=1)
        vs.width, vs.height = 64, 48
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        aus = out.add_stream("pcm_s16le", rate=8000)
        aus.layout = "mono"
        for at_s in (0, 36000):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = at_s * 1000
            frame.time_base = Fraction(1, 1000)
            for packet in vs.encode(frame):
                out.mux(packet)
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            chunk.sample_rate = 8000
            chunk.pts = at_s * 8000
            chunk.time_base = Fraction(1, 8000)
            for packet in aus.encode(chunk):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: _bytes(p, b""), "empty file"),
        (lambda p: _bytes(p, b"<html><body>not a video</body></html>"), "not a readable media file"),
        (lambda p: _bytes(p, np.random.default_rng(0).bytes(5000)), "not a readable media file"),
        (lambda p: _write(p, video=False), "audio only"),
        (lambda p: _write(p, audio=False), "video only"),
        (lambda p: _write(p, silent=True), "silent audio"),
    ],
    ids=["zero-bytes", "html", "random-bytes", "audio-only", "video-only", "silent"],
)
def test_probe_rejects_bad_files_with_a_reason(tmp_path, make, reason):
    probe = probe_media(make(tmp_path / "input.mp4"), ProbeConfig())
    assert not probe.ok and probe.reason.startswith(reason), probe.reason


def test_probe_rejects_truncated_and_oversized_files(tmp_path):
    whole = _write(tmp_path / "whole.mp4", seconds=2.0)
    assert probe_media(whole, ProbeConfig()).ok
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 3])
    assert not probe_media(truncated, ProbeConfig()).ok
    big = probe_media(whole, ProbeConfig(max_pixels=32 * 32))
    assert not big.ok and big.reason.startswith("frames too large")


def test_a_ten_hour_file_is_rejected_without_decoding_it(tmp_path):
    import time

    path = _sparse_ten_hours(tmp_path / "ten-hours.mkv")
    started = time.perf_counter()
    probe = probe_media(path, ProbeConfig())
    assert not probe.ok and probe.reason.startswith("too long") and probe.duration_s >= 35999
    silent = probe_media(path, ProbeConfig(max_duration_s=11 * 3600))
    assert not silent.ok and silent.reason.startswith("silent audio")
    assert time.perf_counter() - started < 10


@pytest.mark.slow
def test_scan_finds_true_cuts_and_screens_scenes(footage_dir):
    from emoforge.curation.process import Scanner

    scanner = Scanner(CurationConfig())
    for truth_path in sorted(footage_dir.glob("*.truth.json")):
        truth = json.loads(truth_path.read_text())
        record = scanner.scan("0123456789abcdef", str(footage_dir / truth["video"]["file"]))
        assert record["status"] == "scanned", record["reason"]
        times = np.asarray(truth["video"]["frame_times_s"])
        found = record["transitions"]
        for cut in truth["cuts"]:
            if cut["kind"] == "cut":  # the same frame, within 2 frames
                assert any(t["kind"] == "cut" and abs(t["time_s"] - cut["time_s"]) <= 2.5 / 25 for t in found), (cut, found)
            else:  # the blend is covered (no scene keeps a blended frame, 2 frames' slack), not much more
                start_s, end_s = times[cut["start_frame"]], times[min(cut["end_frame"], len(times) - 1)]
                match = [t for t in found if t["kind"] == "dissolve" and t["start_s"] < end_s and t["end_s"] > start_s]
                assert match, (cut, found)
                assert match[0]["start_s"] <= start_s + 2.5 / 25 and match[0]["end_s"] >= end_s - 2.5 / 25, (cut, match)
                assert match[0]["start_s"] >= start_s - 8.5 / 25 and match[0]["end_s"] <= end_s + 8.5 / 25, (cut, match)
        assert len(found) == len(truth["cuts"])  # no false cuts (fast motion, pans)
        expected = {s["kind"]: s["curation"]["expected"] for s in truth["scenes"]}
        for scene in record["scenes"]:
            middle = (scene["start_s"] + scene["end_s"]) / 2
            true_scene = next(s for s in truth["scenes"] if s["start_s"] <= middle < s["end_s"])
            if true_scene["kind"] in ("no_face", "voiceover"):
                assert not scene["keep"] and scene["reason"] == "no face"
            if true_scene["kind"] == "talking":
                assert scene["keep"], scene
        assert expected
