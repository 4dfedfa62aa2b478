"""A kept scene span of a source, read on the fly on the 25 fps timeline.

The labeler and the clip writer read the source itself, not a normalised copy: frame
``k`` of a span shows the latest source frame at or before ``start_s + k / fps``
(variable or odd frame rates resampled by time), the labels are measured on the frames
in displayed orientation with the short side at most 1080 px, and the audio is 16 kHz
mono aligned to frame 0. The labeler decodes the span once and the clip writer once
more, only where it keeps a clip; nothing is encoded between them and nothing holds the
span in memory. (An intermediate file per span was written once and decoded twice: its
encode and decodes were a fifth of the curation's CPU, docs/performance.md.) A span
worker keeps each pass's decode of a source open (``SourceDecoder``), so the next span
goes on from where the last one stopped instead of decoding from a keyframe again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


class SpanReader:
    """``[start_s, end_s)`` of ``source`` as ``n_frames`` frames at ``fps`` and its audio.

    ``displayed_size`` is the source's (width, height) after rotation (from the probe);
    ``size`` is the labels' frame size: displayed, the short side at most ``max_short_side_px``.
    """

    def __init__(self, source: Path, start_s: float, end_s: float, display_rotation_deg: int,
                 displayed_size: tuple[int, int], fps: int = 25, audio_rate_hz: int = 16000,
                 max_short_side_px: int = 1080):
        self.source = Path(source)
        self.start_s, self.fps, self.audio_rate_hz = start_s, fps, audio_rate_hz
        self.n_frames = int(np.floor((end_s - start_s) * fps + 1e-6))
        self.turns = (display_rotation_deg // 90) % 4
        width, height = displayed_size
        scale = min(1.0, max_short_side_px / min(width, height))
        self.size = (int(width * scale) // 2 * 2, int(height * scale) // 2 * 2)

    def audio(self) -> np.ndarray:
        """The span's mono audio, ``n_frames / fps`` long, sample 0 at frame 0's time, at 16-bit
        precision (as the clips store it); silence where the source has no audio."""
        import av

        with av.open(str(self.source)) as container:
            audio = _audio_span(container, self.start_s, self.n_frames / self.fps, self.audio_rate_hz)
        return np.clip(audio * 32767.0, -32768, 32767).astype(np.int16).astype(np.float32) / 32767.0

    def frames(self, first: int = 0, decoder: "SourceDecoder | None" = None) -> Iterator[tuple[int, object]]:
        """``(k, frame)`` for the span's frames ``first, first + 1, ...`` as decoded (stored
        orientation and size: :meth:`rgb` and :meth:`displayed_yuv` turn them). A frame is
        repeated where the source has none newer, before its first frame and after a damaged
        or early end; no frame at all when nothing decodes. Without a ``decoder``, the source
        is opened for this call; with one, its decode goes on from where it stopped when it can."""
        index = max(0, first)
        if index >= self.n_frames:
            return
        if decoder is not None:
            yield from self._resampled(index, decoder.frames_from(self.start_s + index / self.fps), decoder.first_pts)
            return
        with SourceDecoder(self.source) as own:
            yield from self._resampled(index, own.frames_from(self.start_s + index / self.fps), own.first_pts)

    def _resampled(self, index: int, decoded, first_pts: int):
        import av

        held = None
        try:
            for frame in decoded:
                time_s = float((frame.pts - first_pts) * frame.time_base)
                while index < self.n_frames and time_s > self.start_s + index / self.fps + 1e-6:
                    yield index, (held if held is not None else frame)  # before the first frame: show it
                    index += 1
                held = frame
                if index >= self.n_frames:
                    return
        except (av.error.FFmpegError, ValueError):
            pass  # a damaged tail: the last good frame is held below
        while held is not None and index < self.n_frames:
            yield index, held
            index += 1

    def rgb(self, frame) -> np.ndarray:
        """A decoded frame as the labels see it: RGB, displayed orientation, at ``size``."""
        from emoforge.media import turned

        width, height = self.size
        stored = (height, width) if self.turns % 2 else (width, height)
        if (frame.width, frame.height) == stored:
            rgb = frame.to_ndarray(format="rgb24")
        else:  # larger than the labels' size: area-averaged in the same conversion
            rgb = frame.reformat(width=stored[0], height=stored[1], format="rgb24", interpolation="AREA").to_ndarray()
        return turned(rgb, self.turns)

    def displayed_yuv(self, frame):
        """A decoded frame's Y, U, V planes (yuv420p) in displayed orientation at its own
        resolution, and the scale ``(sx, sy)`` from its pixels to the labels' (clips are
        cropped from them). Turning the planes themselves keeps a rotated source's pixels
        (no round trip through RGB)."""
        from emoforge.media import turned, yuv420_planes

        planes = tuple(turned(plane, self.turns) for plane in yuv420_planes(frame))
        height, width = planes[0].shape
        return planes, (self.size[0] / width, self.size[1] / height)


class SourceDecoder:
    """A source's video decode, kept open across the spans of one source.

    Spans of a source are read in order, and each started from the keyframe at or before
    it: a span after a dissolve (no keyframe there) or after a cut the encoder put no
    keyframe on decoded seconds of the scene before it again, half again as many frames as
    the spans used on generated footage (docs/performance.md). ``frames_from`` goes on from
    the last decoded frame when that frame lies at or before the requested time, and seeks
    otherwise, or when more than ``CONTINUE_GAP_S`` lie between (a seek's pre-roll is half a
    GOP on average, 1-2 s in web video); the frames are the same either way, since decoding
    from a keyframe gives the pictures a straight decode gives.
    """

    def __init__(self, source: Path):
        import av

        self.source = Path(source)
        self._container = av.open(str(self.source))
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = 1  # a curation worker is one core
        self.first_pts = _first_pts(self._container, self._stream)  # source times are measured from it
        self._decoded = None  # frames (with a pts) in order, from the last seek
        self._last = None  # the last frame taken from them
        self.seeks = 0

    def frames_from(self, start_s: float):
        """Decoded frames from the latest one at or before ``start_s`` (source time, from the first frame)."""
        last = self._last
        gap_s = None if last is None else start_s - float((last.pts - self.first_pts) * last.time_base)
        if self._decoded is None or gap_s is None or not -1e-6 <= gap_s <= CONTINUE_GAP_S:
            self._decoded, self._last, self.seeks = _frames_from(self._container, self._stream, start_s, self.first_pts), None, self.seeks + 1
        else:
            yield last
        try:
            for frame in self._decoded:
                self._last = frame
                yield frame
        except Exception:  # a decode error: seek afresh next time (a reader that stops early is no error)
            self._decoded = None
            raise

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


CONTINUE_GAP_S = 3.0  # decode on through at most this much of a source between two spans, else seek


# Seek to the keyframe at or before a span's start (spans start at scene cuts, where encoders
# put keyframes), then this far before it if the demuxer lands after the start, then from the
# file's start. The first margin is negative (1 ms after the start) so that a keyframe on the
# start itself is found despite rounding to microseconds.
SEEK_MARGINS_S = (-0.001, 1.0, 10.0)


def _frames_from(container, stream, start_s: float, first_pts: int):
    """Decoded frames (with a pts) from the keyframe at or before ``start_s`` (source time).

    The keyframe at or before the span's start, not one a fixed margin earlier: a margin of
    a second skipped the keyframe that an encoder puts on the scene cut where a span starts,
    and the span's reader decoded (and dropped) the whole GOP before it, up to 10 s at x264's
    default. Demuxers may index decode times, or coarsely, so a seek can land after the
    start: then it is repeated further back (``SEEK_MARGINS_S``), at last from the file's start.
    """
    origin_s = float(first_pts * stream.time_base)
    for margin_s in (*SEEK_MARGINS_S, None):
        from_start = margin_s is None or start_s - margin_s <= 0 or start_s <= 0
        target_us = 0 if from_start else int((origin_s + start_s - margin_s) * 1_000_000)
        container.seek(target_us, any_frame=False, backward=True)
        frames = (frame for frame in container.decode(stream) if frame.pts is not None)
        first = next(frames, None)
        if first is None and from_start:
            return
        if first is not None and (from_start or float((first.pts - first_pts) * first.time_base) <= start_s + 1e-6):
            yield first
            yield from frames
            return


def _first_pts(container, stream) -> int:
    """The first video frame's pts (of a container not yet read from): source times are measured
    from it (as the scan does)."""
    for frame in container.decode(stream):
        if frame.pts is not None:
            return frame.pts
    return 0


def _audio_span(container, start_s: float, duration_s: float, rate_hz: int) -> np.ndarray:
    """``duration_s`` of mono audio from ``start_s`` (source time), resampled to ``rate_hz``."""
    import av

    wanted = int(round(duration_s * rate_hz))
    pieces, first_time, decoded = [], None, 0
    if not container.streams.audio:
        return np.zeros(wanted, np.float32)
    stream = container.streams.audio[0]
    video_start = _video_start_s(container)
    container.seek(max(0, int((start_s + video_start - 1.0) * 1_000_000)), any_frame=False, backward=True)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            for out in resampler.resample(frame):
                if first_time is None:
                    first_time = float(out.pts * out.time_base) - video_start if out.pts is not None else 0.0
                pieces.append(out.to_ndarray().reshape(-1))
                decoded += len(pieces[-1])
            if first_time is not None and first_time + decoded / rate_hz >= start_s + duration_s:
                break
    except (av.error.FFmpegError, ValueError):
        pass  # a damaged audio tail: what was decoded is kept, the rest is silence
    if not pieces:
        return np.zeros(wanted, np.float32)
    samples = np.concatenate(pieces).astype(np.float32)
    offset = int(round((start_s - first_time) * rate_hz))
    if offset >= 0:
        samples = samples[offset:]
    else:
        samples = np.concatenate([np.zeros(-offset, np.float32), samples])
    if len(samples) < wanted:
        samples = np.concatenate([samples, np.zeros(wanted - len(samples), np.float32)])
    return samples[:wanted]


def _video_start_s(container) -> float:
    stream = container.streams.video[0] if container.streams.video else None
    if stream is not None and stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0
