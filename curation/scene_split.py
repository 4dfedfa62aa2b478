"""Scene split: hard cuts (PySceneDetect) and dissolves, in one streaming pass.

Frames arrive small (``SceneConfig.analysis_width_px``) and in order. Hard cuts come
from PySceneDetect's ContentDetector. Dissolves it misses: during a linear blend
``f_t = (1 - a) A + a B`` every frame is the midpoint of its neighbours ``k`` frames
away, while the change across those ``2k`` frames is large. Motion and hard cuts break
the midpoint property, so a run of frames with a large change and a small midpoint
residual is a dissolve; its middle becomes the scene boundary and its frames, being
blends of two scenes, belong to neither.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from emoforge.curation.config import SceneConfig


@dataclass(frozen=True)
class Transition:
    kind: str  # "cut" | "dissolve"
    time_s: float  # the boundary: the first frame of the new scene
    start_s: float  # frames in [start_s, end_s) are blends (a cut: start_s == end_s == time_s)
    end_s: float


@dataclass(frozen=True)
class SceneSpan:
    start_s: float
    end_s: float
    transition_in: str | None  # how the scene began: None for the first


class SceneSplitter:
    """Feed ``push(time_s, small_rgb)`` for every frame, then ``finish(duration_s)``."""

    def __init__(self, config: SceneConfig, nominal_fps: float):
        from scenedetect.detectors import ContentDetector

        self.config = config
        self.fps = nominal_fps if nominal_fps and nominal_fps > 0 else 25.0
        self._content = ContentDetector(
            threshold=config.cut_threshold, min_scene_len=max(1, int(round(config.min_scene_s * self.fps)))
        )
        self._times: list[float] = []
        self._cut_frames: list[int] = []
        k = config.dissolve_window_frames
        self._window: deque[np.ndarray] = deque(maxlen=2 * k + 1)
        self._blend_flags: list[bool] = []  # per frame: inside a linear blend

    def push(self, time_s: float, small_rgb: np.ndarray) -> None:
        from scenedetect import FrameTimecode

        index = len(self._times)
        self._times.append(time_s)
        bgr = np.ascontiguousarray(small_rgb[..., ::-1])
        for timecode in self._content.process_frame(FrameTimecode(index, self.fps), bgr):
            self._cut_frames.append(timecode.frame_num)
        grey = small_rgb.astype(np.float32).mean(axis=2)
        self._window.append(grey)
        k = self.config.dissolve_window_frames
        if len(self._window) == 2 * k + 1:
            before, middle, after = self._window[0], self._window[k], self._window[-1]
            change = float(np.abs(after - before).mean())
            residual = float(np.abs(middle - 0.5 * (before + after)).mean())
            flag = change >= self.config.dissolve_min_change and residual <= self.config.dissolve_max_residual * change
            self._blend_flags.append(flag)  # for frame index - k

    def finish(self, duration_s: float) -> tuple[list[SceneSpan], list[Transition]]:
        k = self.config.dissolve_window_frames
        n = len(self._times)
        flags = np.zeros(n, bool)
        flags[k : k + len(self._blend_flags)] = self._blend_flags
        times = np.asarray(self._times + [duration_s])
        transitions: list[Transition] = []
        # Dissolves: runs of blended frames at least k/2 long; a hard cut inside one wins.
        hard = set(self._cut_frames)
        for start, stop in _runs(flags):
            if stop - start < max(2, k // 2) or any(start - k <= c <= stop + k for c in hard):
                continue
            # Flagged centres are those whose whole ±k window lies in the blend, so the
            # blend extends about k frames beyond the run on either side.
            first, last = max(0, start - k), min(n, stop + k)
            middle = (first + last) // 2
            transitions.append(Transition("dissolve", float(times[middle]), float(times[first]), float(times[last])))
        for c in sorted(hard):
            transitions.append(Transition("cut", float(times[c]), float(times[c]), float(times[c])))
        transitions.sort(key=lambda t: t.time_s)
        spans, begin, kind = [], 0.0, None
        for transition in transitions:
            if transition.start_s - begin >= self.config.min_scene_s:
                spans.append(SceneSpan(begin, transition.start_s, kind))
            begin, kind = transition.end_s, transition.kind
        if duration_s - begin >= self.config.min_scene_s:
            spans.append(SceneSpan(begin, duration_s, kind))
        return spans, transitions


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))
