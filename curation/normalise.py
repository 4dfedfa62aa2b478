"""Normalise: one kept scene span of a source -> a 25 fps, rotation-applied, 16 kHz mono file.

The labeler and the clip writer read this file, never the source: its frame ``k`` is at
``k / fps`` exactly (variable or odd frame rates resampled by time: each output frame
shows the latest source frame at or before it), frames are in displayed orientation,
and its audio is 16-bit PCM (no encoder priming delay that would shift audio against
video). Frames stream through; nothing holds the span in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NormalisedSpan:
    path: Path
    n_frames: int
    fps: int
    width: int
    height: int
    audio_16k: np.ndarray  # float32 mono, aligned: sample 0 is at frame 0's time


def normalise_span(
    source: Path,
    start_s: float,
    end_s: float,
    out_path: Path,
    display_rotation_deg: int,
    displayed_size: tuple[int, int],
    fps: int = 25,
    audio_rate_hz: int = 16000,
    max_short_side_px: int = 1080,
    keyframe_every: int | None = None,
) -> NormalisedSpan:
    """Write ``[start_s, end_s)`` of ``source`` to ``out_path`` (Matroska: MPEG-4 Part 2 + PCM).

    ``displayed_size`` is the source's (width, height) after rotation (from the probe).
    Audio is interleaved with the video as it is written, so the muxer buffers nothing.
    ``keyframe_every``: frames ``0, k, 2k, ...`` are keyframes (the clip windows' starts,
    so the clip writer seeks to a clip without decoding the frames before it).
    """
    import av

    n_frames = int(np.floor((end_s - start_s) * fps + 1e-6))
    turns = display_rotation_deg // 90
    width, height = displayed_size
    scale = min(1.0, max_short_side_px / min(width, height))
    size = (int(width * scale) // 2 * 2, int(height * scale) // 2 * 2)
    samples_per_frame = audio_rate_hz / fps
    partial = out_path.with_name(out_path.name + ".partial")
    written = 0
    # One opening of the source for all three reads (each opening probes the streams by decoding).
    with av.open(str(source)) as container, av.open(str(partial), mode="w", format="matroska") as out:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # a curation worker is one core
        first_pts = _first_pts(container, stream)  # before any seek
        audio = _audio_span(container, start_s, n_frames / fps, audio_rate_hz)
        pcm = np.clip(audio * 32767.0, -32768, 32767).astype(np.int16)
        video_out = _add_video_stream(out, fps, size)
        audio_out = out.add_stream("pcm_s16le", rate=audio_rate_hz)
        audio_out.layout = "mono"
        audio_written = 0

        def emit(frame) -> None:
            nonlocal written, audio_written
            _encode_frame(out, video_out, frame, turns, size, written, bool(keyframe_every) and written % keyframe_every == 0)
            written += 1
            audio_due = min(len(pcm), int(round(written * samples_per_frame)))
            if audio_due > audio_written:
                _encode_pcm(out, audio_out, pcm[audio_written:audio_due], audio_written, audio_rate_hz)
                audio_written = audio_due

        held = None  # the latest decoded frame at or before the next output time
        try:
            for frame in _frames_from(container, stream, start_s, first_pts):
                time_s = float((frame.pts - first_pts) * frame.time_base)
                while written < n_frames and time_s > start_s + written / fps + 1e-6:
                    emit(held if held is not None else frame)  # before the first frame: show it
                held = frame
                if written >= n_frames:
                    break
        except (av.error.FFmpegError, ValueError):
            pass  # a damaged tail: the last good frame is held below
        while held is not None and written < n_frames:  # the source ended early: hold its last frame
            emit(held)
        if audio_written < len(pcm[: int(round(written * samples_per_frame))]):
            _encode_pcm(out, audio_out, pcm[audio_written : int(round(written * samples_per_frame))], audio_written, audio_rate_hz)
        for stream_out in (video_out, audio_out):
            for packet in stream_out.encode(None):
                out.mux(packet)
    os.replace(partial, out_path)
    # The audio as stored (16-bit), so a rerun that reads this file back gets identical samples.
    stored_audio = pcm[: int(round(written * samples_per_frame))].astype(np.float32) / 32767.0
    return NormalisedSpan(out_path, written, fps, size[0], size[1], stored_audio)


def read_normalised(path: Path, audio_rate_hz: int) -> NormalisedSpan | None:
    """A finished normalised span (None if it does not read back whole)."""
    import av

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            width, height = video.codec_context.width, video.codec_context.height
            fps = int(round(float(video.average_rate or 25)))
            n_frames = sum(1 for _ in container.demux(video) if _.size)
        with av.open(str(path)) as container:
            pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    except (av.error.FFmpegError, ValueError, IndexError):
        return None
    audio = pcm.astype(np.float32) / 32767.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
    return NormalisedSpan(path, n_frames, fps, width, height, audio)


# The normalised file is an intermediate that is written once and decoded twice (label, clips):
# MPEG-4 Part 2 at a fixed quantiser of 1 costs less to encode and to decode than x264's
# ultrafast preset at crf 16 and keeps more (docs/performance.md "Curation").
INTERMEDIATE_CODEC = "mpeg4"
INTERMEDIATE_QSCALE = 1


def _add_video_stream(out, fps: int, size: tuple[int, int]):
    """The intermediate's video stream: constant quantiser, no B-frames, keyframes only where forced."""
    video_out = out.add_stream(INTERMEDIATE_CODEC, rate=fps)
    video_out.width, video_out.height = size
    video_out.pix_fmt = "yuv420p"
    # One thread (a worker is one core); keyframes are the forced ones, and one every 600 frames
    # (the encoder's longest GOP) bounds how far the clip writer may decode to reach a clip.
    quantiser = str(INTERMEDIATE_QSCALE)
    video_out.options = {"threads": "1", "g": "600", "bf": "0", "qmin": quantiser, "qmax": quantiser}
    video_out.codec_context.qscale = True  # a fixed quantiser (qmin = qmax), no rate control
    video_out.codec_context.time_base = Fraction(1, fps)
    return video_out


def _encode_frame(out, video_out, frame, turns: int, size: tuple[int, int], index: int, keyframe: bool) -> None:
    import av
    from av.video.frame import PictureType

    if not turns and frame.format.name == "yuv420p" and (frame.width, frame.height) == size:
        image = frame  # already what the encoder takes: no RGB round trip (2 colour conversions a frame)
    else:
        rgb = frame.to_ndarray(format="rgb24")
        if turns:
            rgb = np.rot90(rgb, k=turns)
        if rgb.shape[1] != size[0] or rgb.shape[0] != size[1]:
            import cv2

            rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    # A set picture type is obeyed by the encoder (I: a keyframe, no later frame refers to an
    # earlier one); a source frame's own type is cleared. The encoder keeps its own reference,
    # so a held frame may be sent again.
    image.pict_type = PictureType.I if keyframe else PictureType.NONE
    image.pts = index
    image.time_base = Fraction(1, video_out.codec_context.time_base.denominator)
    for packet in video_out.encode(image):
        out.mux(packet)


def _encode_pcm(out, audio_out, pcm: np.ndarray, first_sample: int, rate_hz: int) -> None:
    import av

    chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None]), format="s16", layout="mono")
    chunk.sample_rate = rate_hz
    chunk.pts = first_sample
    chunk.time_base = Fraction(1, rate_hz)
    for packet in audio_out.encode(chunk):
        out.mux(packet)


# Seek to the keyframe at or before a span's start (spans start at scene cuts, where encoders
# put keyframes), then this far before it if the demuxer lands after the start, then from the
# file's start. The first margin is negative (1 ms after the start) so that a keyframe on the
# start itself is found despite rounding to microseconds.
SEEK_MARGINS_S = (-0.001, 1.0, 10.0)


def _frames_from(container, stream, start_s: float, first_pts: int):
    """Decoded frames (with a pts) from the keyframe at or before ``start_s`` (source time).

    The keyframe at or before the span's start, not one a fixed margin earlier: a margin of
    a second skipped the keyframe that an encoder puts on the scene cut where a span starts,
    and normalise decoded (and dropped) the whole GOP before it, up to 10 s at x264's
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
