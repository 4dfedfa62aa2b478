"""normalise_span: frame count, keyframes on the clip windows' starts, pixels kept on both encode
paths, and decoding from the keyframe at or before the span (seeking again when a seek overshoots)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from emoforge.curation import normalise
from emoforge.curation.normalise import normalise_span


def _write_source(path, n_frames=60, size=(160, 96), fps=25, keyframes=()):
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
            frame.pict_type = av.video.frame.PictureType.I if k in keyframes else av.video.frame.PictureType.NONE
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
    # The same pictures through the intermediate codec (a wrong turn gives ~80); the RGB path
    # also pays two colour conversions on saturated 8-px colour blocks.
    assert error < (1.5 if rotation == 0 else 8.0), error


class _CountingSeeks:
    """A container whose first ``overshoot`` seeks land ``by_us`` later than asked (as a demuxer
    indexing decode times, or coarsely, can); records every target."""

    def __init__(self, container, overshoot: int, by_us: int):
        self.container, self.overshoot, self.by_us, self.targets = container, overshoot, by_us, []

    def seek(self, target_us, **kwargs):
        self.targets.append(target_us)
        late = self.by_us if len(self.targets) <= self.overshoot else 0
        self.container.seek(target_us + late, **kwargs)

    def decode(self, stream):
        return self.container.decode(stream)


@pytest.mark.parametrize("overshoot", [0, 1, 2])
def test_decoding_starts_at_the_keyframe_at_or_before_the_span(tmp_path, overshoot):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=100, keyframes=(0, 30, 50, 80))  # span starts on 50, and between 50 and 80
    for start_frame, keyframe in ((50, 50), (60, 50)):
        with av.open(str(source)) as container:
            seeks = _CountingSeeks(container, overshoot, by_us=3_000_000)  # lands on 80 or past the end
            stream = container.streams.video[0]
            first_pts = normalise._first_pts(container, stream)
            frames = normalise._frames_from(seeks, stream, start_frame / 25, first_pts)
            first = next(frames)
            first_frame = int(round(float((first.pts - first_pts) * first.time_base) * 25))
        assert first_frame <= start_frame, (overshoot, first_frame)
        if overshoot == 0:  # not a fixed margin back: the keyframe at or before the start
            assert first_frame == keyframe
        assert len(seeks.targets) == overshoot + 1


def test_a_span_on_a_keyframe_reads_the_same_pictures_as_the_source(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=100, keyframes=(0, 50))
    normalise_span(source, 2.0, 3.0, tmp_path / "span.mkv", 0, (160, 96))
    _, frames = _read(tmp_path / "span.mkv")
    _, source_frames = _read(source)
    assert len(frames) == 25
    error = np.abs(frames.astype(int) - source_frames[50:75].astype(int)).mean(axis=(1, 2, 3))
    assert error.max() < 1.5, error  # a picture from before the span (an 8-px roll) gives ~80
