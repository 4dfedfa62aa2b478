"""SpanReader: a span of the source on the 25 fps timeline, the same pictures as the source's
decode (turned, scaled), the same frames whether read from the start or from the middle,
frame rates resampled by time, a short source's last frame held, and decoding from the
keyframe at or before the span (seeking again when a seek overshoots)."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from emoforge.curation import span as span_module
from emoforge.curation.clips import crop_yuv420
from emoforge.curation.span import SpanReader


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


def _source_frames(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _span_rgb(reader, first=0):
    return np.stack([reader.rgb(frame) for _, frame in reader.frames(first)])


@pytest.mark.parametrize("rotation", [0, 90])
def test_the_span_is_the_source_decode_turned(tmp_path, rotation):
    source = tmp_path / "source.mp4"
    _write_source(source)
    displayed = (160, 96) if rotation == 0 else (96, 160)
    reader = SpanReader(source, 0.4, 2.0, rotation, displayed)
    assert reader.n_frames == 40 and reader.size == displayed
    indices = [k for k, _ in reader.frames()]
    assert indices == list(range(40))
    expected = _source_frames(source)[10:50]  # 0.4 s = frame 10
    if rotation:
        expected = np.rot90(expected, k=rotation // 90, axes=(1, 2))
    assert np.array_equal(_span_rgb(reader), expected)  # no intermediate encode: the decoded pictures themselves


def test_reading_from_the_middle_gives_the_same_frames(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=100, keyframes=(0, 40))
    reader = SpanReader(source, 0.4, 3.6, 0, (160, 96))
    whole = _span_rgb(reader)
    for first in (13, 30, 45, 79):  # before and after the keyframe at source frame 40
        assert [k for k, _ in reader.frames(first)] == list(range(first, 80))
        assert np.array_equal(_span_rgb(reader, first), whole[first:]), first


def test_spans_read_through_one_open_decode_are_the_spans_read_alone(tmp_path):
    """Consecutive spans go on decoding where the last one stopped (no seek back to the
    keyframe); going backwards or across a long gap seeks; the frames are the same."""
    from emoforge.curation.span import CONTINUE_GAP_S, SourceDecoder

    source = tmp_path / "source.mp4"
    n_frames = int((CONTINUE_GAP_S + 2.4) * 25)
    _write_source(source, n_frames=n_frames, keyframes=(0,))  # one keyframe: a seek decodes from frame 0
    spans = [(0.4, 1.0, 1), (1.0, 1.64, 1), (1.8, 2.2, 1), (0.2, 0.6, 2), (0.6, 0.8, 2),
             (0.8 + CONTINUE_GAP_S + 0.2, 0.8 + CONTINUE_GAP_S + 1.0, 3)]  # (start, end, seeks so far)
    with SourceDecoder(source) as decoder:
        for start_s, end_s, seeks in spans:
            reader = SpanReader(source, start_s, end_s, 0, (160, 96))
            alone = _span_rgb(reader)
            shared = np.stack([reader.rgb(frame) for _, frame in reader.frames(decoder=decoder)])
            assert np.array_equal(shared, alone), (start_s, end_s)
            assert decoder.seeks == seeks, (start_s, decoder.seeks)
        # a reader that starts mid-span and stops early leaves the decode where it can go on
        reader = SpanReader(source, 2.4, 3.2, 0, (160, 96))
        first_half = [reader.rgb(frame) for _, (k, frame) in zip(range(5), reader.frames(decoder=decoder))]
        rest = [reader.rgb(frame) for _, frame in reader.frames(10, decoder=decoder)]
        assert np.array_equal(np.stack(first_half + rest), np.delete(_span_rgb(reader), range(5, 10), axis=0))
        assert decoder.seeks == 4


def test_frame_rates_are_resampled_by_time_and_a_short_source_holds_its_last_frame(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=20, fps=10)  # 2 s at 10 fps
    reader = SpanReader(source, 0.0, 3.0, 0, (160, 96))  # a second past the source's end
    frames = _span_rgb(reader)
    assert len(frames) == 75
    source_frames = _source_frames(source)
    for k in range(75):  # the latest source frame at or before k / 25 s, the last one after the end
        assert np.array_equal(frames[k], source_frames[min(19, int(np.floor(k * 10 / 25 + 1e-9)))]), k


def test_a_large_source_is_labelled_scaled_down_and_cropped_from_its_own_pixels(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=5)
    reader = SpanReader(source, 0.0, 0.2, 0, (160, 96), max_short_side_px=48)
    assert reader.size == (80, 48)
    _, frame = next(reader.frames())
    labels_rgb = reader.rgb(frame)
    assert labels_rgb.shape == (48, 80, 3)
    scale, (x0, y0) = 2.0, (20.0, 8.0)  # a 32 px box of the labels' frame to a 64 px crop
    affine = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    picture, (sx, sy) = reader.displayed_yuv(frame)
    assert (sx, sy) == (0.5, 0.5)
    on_frame = np.float32([[scale * sx, 0, affine[0, 2]], [0, scale * sy, affine[1, 2]]])
    crop = crop_yuv420(picture, on_frame, 64).to_ndarray(format="rgb24")
    from_source = cv2.warpAffine(_source_frames(source)[0], on_frame, (64, 64), flags=cv2.INTER_LINEAR)
    from_labels = cv2.warpAffine(labels_rgb, affine, (64, 64), flags=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - from_source.astype(int)).mean() < 1  # a whole-pixel shift of the source: its pixels
    assert np.abs(crop.astype(int) - from_labels.astype(int)).mean() < 25  # the same place as the labels' box
    wrong = cv2.warpAffine(_source_frames(source)[0], affine, (64, 64), flags=cv2.INTER_LINEAR)  # scale ignored
    assert np.abs(crop.astype(int) - wrong.astype(int)).mean() > 40


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_rotated_sources_planes_are_turned_and_cropped_where_its_labels_are(tmp_path, rotation):
    """The clip's crop of a rotated source comes from its turned Y, U, V planes (no round
    trip through RGB) and shows what the labels' turned RGB frame shows there."""
    from emoforge.media import yuv420_planes

    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=5)
    turns = rotation // 90
    displayed = (96, 160) if turns % 2 else (160, 96)
    reader = SpanReader(source, 0.0, 0.2, rotation, displayed)
    _, frame = next(reader.frames())
    planes, (sx, sy) = reader.displayed_yuv(frame)
    assert (sx, sy) == (1.0, 1.0)
    for turned_plane, plane in zip(planes, yuv420_planes(frame)):
        assert np.array_equal(turned_plane, np.rot90(plane, k=turns))
    labels_rgb = reader.rgb(frame)
    assert np.array_equal(labels_rgb, np.rot90(_source_frames(source)[0], k=turns))
    affine = np.float32([[1.0, 0, -16.0], [0, 1.0, -24.0]])  # a 64 px box of the displayed frame
    crop = crop_yuv420(planes, affine, 64).to_ndarray(format="rgb24")
    expected = cv2.warpAffine(labels_rgb, affine, (64, 64), flags=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 3  # chroma subsampling apart, the same pixels


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
            first_pts = span_module._first_pts(container, stream)
            frames = span_module._frames_from(seeks, stream, start_frame / 25, first_pts)
            first = next(frames)
            first_frame = int(round(float((first.pts - first_pts) * first.time_base) * 25))
        assert first_frame <= start_frame, (overshoot, first_frame)
        if overshoot == 0:  # not a fixed margin back: the keyframe at or before the start
            assert first_frame == keyframe
        assert len(seeks.targets) == overshoot + 1


def test_a_span_on_a_keyframe_reads_the_same_pictures_as_the_source(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=100, keyframes=(0, 50))
    frames = _span_rgb(SpanReader(source, 2.0, 3.0, 0, (160, 96)))
    assert np.array_equal(frames, _source_frames(source)[50:75])


def test_the_audio_is_aligned_and_silent_without_an_audio_stream(tmp_path):
    source = tmp_path / "source.mp4"
    _write_source(source, n_frames=50)
    audio = SpanReader(source, 0.4, 1.6, 0, (160, 96)).audio()
    assert audio.shape == (int(1.2 * 16000),) and audio.dtype == np.float32 and not audio.any()
