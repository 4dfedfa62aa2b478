"""Scene split: hard cuts (PySceneDetect) and dissolves, in one streaming pass.

Frames arrive small (``SceneConfig.analysis_width_px``) and in order. Hard cuts come
from PySceneDetect's ContentDetector. Dissolves it misses: during a linear blend
``f_t = (1 - a) A + a B`` every frame is the midpoint of its neighbours ``k`` frames
away, while the change across those ``2k`` frames is large. Hard cuts break the
midpoint property. Motion inside a scene (a slow pan, a turning head) can look like a
blend pixel by pixel, but it keeps the scene's colours, so a dissolve must also change
the colour histogram a lot across the window, or, between scenes that look alike, be far
more linear than motion is. A run of frames meeting these tests is a dissolve. Its extent is then measured, not guessed: with ``A`` a frame before
the run and ``B`` one after, each frame's blend weight is its projection onto ``B - A``.
The weights rise along a line from one plateau to the other; motion inside the scenes
tilts the plateaus, so the blend's ends are the knots of a drift-rise-drift fit (the
window widened until both plateaus are in it), with a line through the rise's middle as
the fallback where the scenes move too much for that fit. Frames between the knots are
blends of two scenes and belong to neither. Runs are refined as they close, from a ring
buffer of small frames, so memory stays flat in video length.
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
        self.fps = float(nominal_fps) if nominal_fps and nominal_fps > 0 else 25.0
        self._content = ContentDetector(
            threshold=config.cut_threshold, min_scene_len=max(1, int(round(config.min_scene_s * self.fps)))
        )
        self._times: list[float] = []
        self._cut_frames: list[int] = []
        k = config.dissolve_window_frames
        self._window: deque[np.ndarray] = deque(maxlen=2 * k + 1)
        self._blend_flags: list[bool] = []  # per frame: inside a linear blend
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=RECENT_FRAMES)  # (index, grey)
        self._open_run: list[int] | None = None  # [start, stop) of flagged centres not yet refined
        self._dissolves: list[tuple[int, int]] = []  # refined [first, last) blended frames

    def push(self, time_s: float, small_rgb: np.ndarray) -> None:
        from scenedetect import FrameTimecode

        index = len(self._times)
        self._times.append(time_s)
        bgr = np.ascontiguousarray(small_rgb[..., ::-1])
        for timecode in self._content.process_frame(FrameTimecode(index, self.fps), bgr):
            self._cut_frames.append(timecode.frame_num)
        # The channels' mean, summed plane by plane (6x faster than .mean(axis=2), the same values)
        grey = (small_rgb[..., 0].astype(np.float32) + small_rgb[..., 1] + small_rgb[..., 2]) / 3
        self._recent.append((index, grey))
        self._window.append((grey, _colour_histogram(small_rgb)))
        k = self.config.dissolve_window_frames
        if len(self._window) == 2 * k + 1:
            (before, hist_before), (middle, _), (after, hist_after) = self._window[0], self._window[k], self._window[-1]
            change = float(np.abs(after - before).mean())
            residual = float(np.abs(middle - 0.5 * (before + after)).mean())
            histogram_change = float(np.abs(hist_after - hist_before).sum())
            flag = (
                change >= self.config.dissolve_min_change
                and residual <= self.config.dissolve_max_residual * change
                and (histogram_change >= self.config.dissolve_min_histogram_change
                     or (change >= self.config.dissolve_linear_min_change
                         and residual <= self.config.dissolve_linear_residual * change))
            )
            self._blend_flags.append(flag)  # for frame index - k
            self._track_run(index - k, flag)

    def _track_run(self, centre: int, flag: bool) -> None:
        """Grow the open run of flagged centres; refine it once it is k frames behind."""
        k = self.config.dissolve_window_frames
        run = self._open_run
        if flag:
            if run is not None and centre - run[1] <= k:
                run[1] = centre + 1
                return
            if run is not None:
                self._close_run()
            self._open_run = [centre, centre + 1]
        elif run is not None and centre - run[1] > k and self._recent[-1][0] - run[1] >= 6 * k:
            self._close_run()

    def _close_run(self) -> None:
        start, stop = self._open_run
        self._open_run = None
        k = self.config.dissolve_window_frames
        if stop - start < max(2, k // 2):
            return
        frames = dict(self._recent)
        before, after = start - 2 * k, stop - 1 + 2 * k
        if before not in frames or after not in frames:  # too long for the buffer: keep the run's guess
            self._dissolves.append((max(0, start - k // 2), stop + k // 2))
            return
        weights = _blend_weights(frames, before, after)
        if weights is None:
            return
        middle = min(range(start, stop), key=lambda i: abs(weights[i - before] - 0.5))
        if not BLEND_WEIGHT_MARGIN < weights[middle - before] < 1.0 - BLEND_WEIGHT_MARGIN:
            return  # the run's middle is one scene or the other: motion, not a blend
        extent = _ramp_extent(frames, before, after, middle) or _middle_ramp_extent(weights, before, after, middle)
        if extent is not None:
            self._dissolves.append(extent)

    def finish(self, duration_s: float) -> tuple[list[SceneSpan], list[Transition]]:
        k = self.config.dissolve_window_frames
        n = len(self._times)
        if self._open_run is not None:
            self._close_run()
        times = np.asarray(self._times + [duration_s])
        transitions: list[Transition] = []
        hard = set(self._cut_frames)
        for first, last in self._dissolves:  # a hard cut inside or beside a blend wins
            first, last = max(0, first), min(n, last)
            if last <= first or any(first - k <= c <= last + k for c in hard):
                continue
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


RECENT_FRAMES = 160  # small grey frames kept for refining a dissolve (~6 s at 25 fps, ~9 MB)
BLEND_WEIGHT_MARGIN = 0.08  # blend weights within this of 0 or 1 are taken as motion noise
RAMP_MARGIN_FRAMES = 0.5  # frames added to each side of a measured blend
KNOT_STEP_FRAMES = 0.25  # resolution of the ramp's ends
RAMP_EDGE_FRAMES = 2  # a knot this close to A or B: that plateau is not seen, widen the window
RAMP_MAX_RMS = 0.03  # a worse fit is not one linear blend over linear drifts
MAX_DRIFT_RATIO = 0.3  # a plateau's slope (motion) is at most this fraction of the blend's


def _ramp_extent(frames: dict, before: int, after: int, middle: int) -> tuple[int, int] | None:
    """The blend's ``[first, end)`` frames from a drift-rise-drift fit (``_fit_ramp``); None
    when the weights are no such ramp (scenes that move too much: a pan, a zoom).

    A and B (frames ``before`` and ``after``) must be clean frames of the two scenes: were
    one still blended, every weight would be scaled by it and the rise would seem to end
    there. So while the rise reaches the window's edge, the window grows (within the buffer).
    """
    first_kept, last_kept = min(frames), max(frames)
    for _ in range(6):
        weights = _blend_weights(frames, before, after)
        ramp = None if weights is None else _fit_ramp(np.arange(before, after + 1, dtype=np.float64), weights, middle)
        if ramp is not None and ramp[0] - before > RAMP_EDGE_FRAMES and after - ramp[1] > RAMP_EDGE_FRAMES:
            # First and last blended frames: those past the knots, with half a frame to spare.
            first = int(np.floor(ramp[0] - RAMP_MARGIN_FRAMES)) + 1
            end = int(np.ceil(ramp[1] + RAMP_MARGIN_FRAMES))
            return max(first, before + 1), min(end, after)
        wider = max(first_kept, before - RAMP_EDGE_FRAMES - 3), min(last_kept, after + RAMP_EDGE_FRAMES + 3)
        if wider == (before, after):
            return None
        before, after = wider
    return None


def _middle_ramp_extent(weights: np.ndarray, before: int, after: int, middle: int) -> tuple[int, int] | None:
    """The blend's ``[first, end)`` frames from a line fitted to the weights' middle (0.2-0.8),
    contiguous around ``middle`` and extrapolated to where it leaves 0 and 1: the fallback
    for blends under strong motion (errs wide there, by up to a dozen frames)."""
    weight = lambda i: weights[i - before]
    low, high = BLEND_WEIGHT_MARGIN, 1.0 - BLEND_WEIGHT_MARGIN
    ramp = [middle]
    while ramp[0] - 1 > before and 0.2 < weight(ramp[0] - 1) < 0.8:
        ramp.insert(0, ramp[0] - 1)
    while ramp[-1] + 1 < after and 0.2 < weight(ramp[-1] + 1) < 0.8:
        ramp.append(ramp[-1] + 1)
    if len(ramp) >= 3:
        slope, intercept = np.polyfit(ramp, [weight(i) for i in ramp], 1)
        if slope <= 0:
            return None
        first = int(np.floor(-intercept / slope)) + 1  # first frame with weight > 0
        last = int(np.ceil((1.0 - intercept) / slope)) - 1  # last frame with weight < 1
    else:  # a very short blend: walk out from the middle
        first = last = middle
        while first - 1 > before and weight(first - 1) > low:
            first -= 1
        while last + 1 < after and weight(last + 1) < high:
            last += 1
    return max(first, before + 1), min(last, after - 1) + 1


def _blend_weights(frames: dict, before: int, after: int) -> np.ndarray | None:
    """Each frame's projection onto ``B - A`` (A = frame ``before``, B = frame ``after``): 0 at A, 1 at B."""
    a, b = frames[before], frames[after]
    direction = (b - a).ravel()
    norm2 = float(direction @ direction)
    if norm2 <= 0:
        return None
    stack = np.stack([frames[i].ravel() for i in range(before, after + 1)]) - a.ravel()
    return stack @ direction / norm2


def _fit_ramp(x: np.ndarray, y: np.ndarray, middle: int) -> tuple[float, float, float] | None:
    """The knots ``(s, e)`` and the RMS residual of the continuous piecewise-linear fit: a drift, a rise, a drift.

    The blend rises linearly from scene A's plateau to scene B's. Motion inside either scene
    moves the projected weights too, slowly, so each plateau gets its own line rather than
    the levels 0 and 1 (fitting a line to the rise alone and extrapolating it to 0 and 1 put
    the start of a 24 fps blend two frames early). Least squares over a grid of knots, each
    plateau keeping at least two frames. None when no candidate rises by half or more with
    plateaus flatter than the rise, or when the best leaves more than ``RAMP_MAX_RMS``.
    """
    x0 = x[0]  # knots and frames counted from the window's start: frame numbers grow large
    x = x - x0
    middle -= x0
    starts, ends = np.arange(1.0, middle), np.arange(middle + 1.0, x[-1])
    if len(starts) == 0 or len(ends) == 0:
        return None
    s, e = (grid.ravel() for grid in np.meshgrid(starts, ends, indexing="ij"))
    best, _ = _best_knots(x, y, s, e)  # whole frames first, then quarters around the best
    if best is None:
        return None
    fine = np.arange(-1.0, 1.0 + KNOT_STEP_FRAMES / 2, KNOT_STEP_FRAMES)
    s, e = (grid.ravel() for grid in np.meshgrid(best[0] + fine, best[1] + fine, indexing="ij"))
    inside = (s >= 1) & (s < middle) & (e > middle) & (e <= x[-1] - 1)
    (s_best, e_best), residual = _best_knots(x, y, s[inside], e[inside])
    rms = float(np.sqrt(residual / len(x)))
    return (float(s_best + x0), float(e_best + x0), rms) if rms <= RAMP_MAX_RMS else None


def _best_knots(x: np.ndarray, y: np.ndarray, s: np.ndarray, e: np.ndarray):
    """Of candidate knot pairs, the least-squares one whose fit is a blend: ``((s, e), residual)``."""
    columns = [np.ones((len(s), len(x))), np.broadcast_to(x, (len(s), len(x))), np.maximum(x - s[:, None], 0), np.maximum(x - e[:, None], 0)]
    design = np.stack(columns, axis=-1)  # (candidates, frames, 4)
    gram = np.einsum("cfi,cfj->cij", design, design) + 1e-9 * np.eye(4)
    coef = np.linalg.solve(gram, np.einsum("cfi,f->ci", design, y)[..., None])[..., 0]
    residual = ((np.einsum("cfi,ci->cf", design, coef) - y) ** 2).sum(axis=1)
    slope = coef[:, 1] + coef[:, 2]  # the rise's
    drifts = np.maximum(np.abs(coef[:, 1]), np.abs(slope + coef[:, 3]))
    # A plateau that climbs like the rise is the rise itself running past A or B, not a drift.
    residual[(slope * (e - s) < 0.5) | (drifts > MAX_DRIFT_RATIO * slope)] = np.inf
    best = int(np.argmin(residual))
    if not np.isfinite(residual[best]):
        return None, np.inf
    return (s[best], e[best]), float(residual[best])


def _colour_histogram(rgb: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-channel histograms, each normalised to sum 1/3: L1 distances lie in [0, 2]."""
    import cv2

    counts = np.concatenate([cv2.calcHist([rgb], [c], None, [bins], [0, 256]).ravel() for c in range(3)])
    return counts.astype(np.float64) / (3.0 * rgb.shape[0] * rgb.shape[1])
