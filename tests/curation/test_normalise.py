"""normalise_span: frame count, keyframes on the clip windows' starts, and pixels kept on both encode paths."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from emoforge.curation.normalise import normalise_span


def _write_source(path, n_frames=60, size=(160, 96), fps=25):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "g": "250"}
        for k in range(n_frames):
            picture = np.kron(np.roll(base, k, axis=1), np.ones((8, 8, 1), np.uint8))  # blocky, moving: codec-friendly
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _read(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        keyframes = sorted(int(round(float(p.pts * p.time_base) * 25)) for p in packets if p.is_keyframe)
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return keyframes, frames


@pytest.mark.parametrize("rotation", [0, 90])  # 0: decoded frames go straight to the encoder; 90: through RGB
def test_keyframes_on_window_starts_and_pixels_kept(tmp_path, rotation):
    source = tmp_path / "source.mp4"
    _write_source(source)
    displayed = (160, 96) if rotation == 0 else (96, 160)
    span = normalise_span(source, 0.4, 2.0, tmp_path / "span.mkv", rotation, displayed, keyframe_every=10)
    assert span.n_frames == 40 and (span.width, span.height) == displayed
    keyframes, frames = _read(tmp_path / "span.mkv")
    assert len(frames) == 40
    assert set(range(0, 40, 10)) <= set(keyframes)
    _, source_frames = _read(source)
    expected = source_frames[10:50]  # 0.4 s = frame 10
    if rotation:
        expected = np.rot90(expected, k=rotation // 90, axes=(1, 2))
    error = np.abs(frames.astype(int) - expected.astype(int)).mean()
    # The same pictures re-encoded at crf 16 (a wrong turn gives ~80); the RGB path also pays
    # two colour conversions on saturated 8-px colour blocks.
    assert error < (1.5 if rotation == 0 else 8.0), error
