"""Probe: what a media file holds, and whether it is worth decoding at all.

Every problem is a reject reason, never an exception: zero bytes, not a media file,
audio-only, video-only, frames too large, too long, silent throughout (checked by
sampling a few audio windows, so a 10-hour silent file costs well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoforge.curation.config import ProbeConfig


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str | None = None
    duration_s: float = 0.0
    width: int = 0  # displayed
    height: int = 0
    nominal_fps: float = 0.0
    display_rotation_deg: int = 0
    video_codec: str = ""
    audio_codec: str = ""
    audio_rate_hz: int = 0
    container: str = ""


def probe_media(path: Path, config: ProbeConfig) -> Probe:
    import av

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Probe(False, f"unreadable file: {exc.strerror}")
    if size == 0:
        return Probe(False, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        return Probe(False, f"not a readable media file ({type(exc).__name__})")
    with container:
        videos, audios = container.streams.video, container.streams.audio
        if not videos and not audios:
            return Probe(False, "no audio or video stream")
        if not videos:
            return Probe(False, "audio only (no video stream)")
        if not audios:
            return Probe(False, "video only (no audio stream)")
        video, audio = videos[0], audios[0]
        duration_s = _duration_s(container, video)
        width, height = video.codec_context.width, video.codec_context.height
        rate = video.average_rate or video.guessed_rate or video.base_rate
        known = dict(  # what a reject still reports (the manifest counts rejected hours too)
            duration_s=duration_s,
            width=int(width or 0),
            height=int(height or 0),
            nominal_fps=float(rate) if rate else 0.0,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name,
            audio_rate_hz=int(audio.codec_context.sample_rate or 0),
            container=container.format.name,
        )
        if duration_s <= 0:
            return Probe(False, "zero duration", **known)
        if not width or not height:
            return Probe(False, "video stream has no frame size", **known)
        if width * height > config.max_pixels:
            return Probe(False, f"frames too large ({width}x{height} > {config.max_pixels} pixels)", **known)
        if duration_s > config.max_duration_s:
            return Probe(False, f"too long ({duration_s / 3600:.1f} h > {config.max_duration_s / 3600:.1f} h)", **known)
        rotation = 0
        try:
            for frame in container.decode(video):
                rotation = int(round((frame.rotation or 0) / 90.0)) % 4 * 90
                width, height = frame.width, frame.height
                break
            else:
                return Probe(False, "no decodable video frame", **known)
        except (av.error.FFmpegError, ValueError) as exc:
            return Probe(False, f"video does not decode ({type(exc).__name__})", **known)
        if rotation in (90, 270):
            width, height = height, width
        known.update(width=int(width), height=int(height), nominal_fps=known["nominal_fps"] or 25.0)
        result = Probe(True, None, display_rotation_deg=rotation, **known)
    loudest = _loudest_window_dbfs(path, duration_s, config.silence_windows)
    if loudest is None:
        return Probe(False, "audio does not decode", **_fields(result, ok=False))
    if loudest < config.silence_dbfs:
        return Probe(False, f"silent audio (loudest sampled window {loudest:.0f} dBFS)", **_fields(result, ok=False))
    return result


def _fields(probe: Probe, ok: bool) -> dict:
    values = dict(probe.__dict__)
    values.pop("ok"), values.pop("reason")
    return values


def _duration_s(container, video) -> float:
    if container.duration:
        return container.duration / 1_000_000
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return 0.0


def _loudest_window_dbfs(path: Path, duration_s: float, windows: int) -> float | None:
    """RMS level (dBFS) of the loudest of ``windows`` half-second audio windows spread over the file."""
    import av

    loudest = -200.0
    decoded_any = False
    starts = np.linspace(0, max(0.0, duration_s - 0.5), windows)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            for start_s in starts:
                container.seek(int(start_s / stream.time_base), stream=stream, any_frame=False, backward=True)
                gathered, needed = [], None
                for frame in container.decode(stream):
                    if frame.pts is not None and float(frame.pts * frame.time_base) + frame.samples / frame.sample_rate < start_s:
                        continue  # before the window (seeks land on an earlier packet)
                    raw = frame.to_ndarray()
                    samples = raw.astype(np.float32)
                    if np.issubdtype(raw.dtype, np.integer):
                        samples /= float(np.iinfo(raw.dtype).max)
                    gathered.append(samples.reshape(-1))
                    needed = needed or int(0.5 * frame.sample_rate * max(1, len(frame.layout.channels)))
                    if sum(len(g) for g in gathered) >= needed:
                        break
                if gathered:
                    decoded_any = True
                    block = np.concatenate(gathered)
                    rms = float(np.sqrt(np.mean(block.astype(np.float64) ** 2)) + 1e-12)
                    loudest = max(loudest, 20 * np.log10(rms))
    except (av.error.FFmpegError, ValueError):
        return loudest if decoded_any else None
    return loudest if decoded_any else None
