"""Scan: one streaming decode of a source that splits it into scenes and screens each
scene's faces from sparse samples, so scenes without one usable face are dropped
before any per-frame work (DESIGN.md §3 steps 3-4).

Frames are turned to their displayed orientation; only small copies are kept, one at a
time, so memory does not grow with the video's length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoforge.curation.config import CurationConfig
from emoforge.curation.probe import Probe
from emoforge.curation.scene_split import SceneSplitter, Transition


@dataclass(frozen=True)
class ScreenedScene:
    index: int
    start_s: float
    end_s: float
    transition_in: str | None
    keep: bool
    reason: str | None
    samples: int
    face_fraction: float  # samples with a usable (large enough) face
    multi_face_fraction: float  # samples with a second comparable face
    median_face_width_px: float


@dataclass
class ScanResult:
    ok: bool
    reason: str | None
    scenes: list[ScreenedScene] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    frames: int = 0
    decoded_s: float = 0.0  # media seconds decoded
    seconds: dict = field(default_factory=dict)  # wall time per step


def scan_video(path: Path, probe: Probe, config: CurationConfig, detector) -> ScanResult:
    """Scene-split and screen ``path``. ``detector`` is a labeling FaceDetector (held by an actor)."""
    import av

    scene_config, screen = config.scenes, config.screen
    splitter = SceneSplitter(scene_config, probe.nominal_fps)
    turns = probe.display_rotation_deg // 90
    small_size = _fit(probe, scene_config.analysis_width_px, turns)
    detect_size = _fit(probe, screen.detect_width_px, turns)
    detect_scale = probe.width / (detect_size[0] if turns % 2 == 0 else detect_size[1])
    samples: list[tuple[float, np.ndarray]] = []  # (time_s, face widths in source px, largest first)
    next_sample_s, frames, last_time_s = 0.0, 0, 0.0
    seconds = {"decode": 0.0, "scene_split": 0.0, "face_screen": 0.0}
    reason = None
    clock = time.perf_counter()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # a curation worker is one core
            # No deblocking of frames that no other frame refers to (H.264's B-frames): it does not
            # show in the scan's 160 and 640 px copies, and no error propagates. Skipping it on every
            # frame saves more but drifts within a GOP: a dissolve's measured end moved by a frame.
            stream.codec_context.options = {"skip_loop_filter": "noref"}
            first_pts = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                first_pts = frame.pts if first_pts is None else first_pts
                time_s = float((frame.pts - first_pts) * frame.time_base)
                small = _displayed(_shrink(frame, small_size), turns)
                now = time.perf_counter()
                seconds["decode"] += now - clock
                splitter.push(time_s, small)
                clock = time.perf_counter()
                seconds["scene_split"] += clock - now
                if time_s >= next_sample_s:
                    rgb = _displayed(_shrink(frame, detect_size), turns)
                    found = detector.detect(rgb, frame_index=len(samples))
                    widths = sorted((float(d.box_xyxy_px[2] - d.box_xyxy_px[0]) * detect_scale for d in found), reverse=True)
                    samples.append((time_s, np.asarray(widths)))
                    next_sample_s = time_s + 1.0 / screen.sample_fps
                    now = time.perf_counter()
                    seconds["face_screen"] += now - clock
                    clock = now
                frames += 1
                last_time_s = time_s
    except (av.error.FFmpegError, ValueError) as exc:
        reason = f"decoding stopped at {last_time_s:.1f} s ({type(exc).__name__})"
    if frames == 0:
        return ScanResult(False, reason or "no decodable video frame", seconds=seconds)
    duration_s = min(probe.duration_s, last_time_s + 1.0 / max(probe.nominal_fps, 1.0))
    spans, transitions = splitter.finish(duration_s)
    scenes = [_screen_scene(i, span, samples, screen) for i, span in enumerate(spans)]
    return ScanResult(True, reason, scenes, transitions, frames, duration_s, seconds)


def _screen_scene(index: int, span, samples, screen) -> ScreenedScene:
    inside = [widths for t, widths in samples if span.start_s <= t < span.end_s]
    if not inside:
        return ScreenedScene(index, span.start_s, span.end_s, span.transition_in, False, "scene too short to screen", 0, 0.0, 0.0, 0.0)
    usable = [len(w) > 0 and w[0] >= screen.min_face_width_px for w in inside]
    multi = [len(w) > 1 and w[1] >= screen.second_face_ratio * w[0] for w in inside]
    any_face = [len(w) > 0 for w in inside]
    widths = [w[0] for w in inside if len(w)]
    face_fraction, multi_fraction = float(np.mean(usable)), float(np.mean(multi))
    median_width = float(np.median(widths)) if widths else 0.0
    if np.mean(any_face) < screen.min_face_fraction:
        keep, reason = False, "no face"
    elif multi_fraction > screen.max_multi_face_fraction:
        keep, reason = False, "several faces"
    elif face_fraction < screen.min_face_fraction:
        keep, reason = False, "face too small"
    else:
        keep, reason = True, None
    return ScreenedScene(
        index, span.start_s, span.end_s, span.transition_in, keep, reason, len(inside), face_fraction, multi_fraction, median_width
    )


def _fit(probe: Probe, width_px: int, turns: int) -> tuple[int, int]:
    """Stored-orientation (width, height) whose displayed width is ``width_px`` (even sizes)."""
    displayed_w = min(width_px, probe.width)
    displayed_h = int(round(probe.height * displayed_w / probe.width / 2)) * 2
    displayed_w = int(displayed_w // 2 * 2)
    return (displayed_h, displayed_w) if turns % 2 else (displayed_w, displayed_h)


def _shrink(frame, size: tuple[int, int]):
    """The frame at ``size`` (width, height) in RGB; area averaging (3x faster than swscale's default here)."""
    return frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")


def _displayed(frame, turns: int) -> np.ndarray:
    rgb = frame.to_ndarray()
    from emoforge.media import turned

    return turned(rgb, turns)
