"""How a face's pixels move from one frame to the next (pyramidal Lucas-Kanade), for head velocity.

Why: MediaPipe regresses each frame's landmarks towards its mean face, so they follow a
turn only part of the way. On rendered heads with known truth, PnP on MediaPipe's 2-D
landmarks reads 0.85-0.9 of a yaw or pitch (on the renderer's true landmarks, with the
same subject model: 1.0), and rotation velocity from consecutive poses came out ~0.8x
truth with ~0.7°/frame of jitter (docs/labeling.md). The image itself moves with the
head: tracking textured points of the face from frame ``f-1`` to ``f`` gives their real
displacement, and :func:`emoforge.labeling.pose.flow_steps` turns those displacements
into the rotation between the two frames.

What is tracked: the upper-face landmarks of frame ``f-1``'s mesh (above the upper lip,
as for PnP: jaw and lips move with speech) but not the face's outline (``FACE_OVAL``: on
the silhouette, a window sees the background too, which holds still, and those points
followed 0.9 of the head's motion: velocity from flow had a slope of 0.93 against truth
with them, 1.01 without), the ``max_points`` best textured of them
(Shi-Tomasi minimum eigenvalue of the gradient matrix, so flat skin, where Lucas-Kanade
is ill-posed, is left out), on a grey crop around the face halved (area averages) until
the face spans at most ``face_px`` pixels (the window then covers a similar part of any
face, and big faces cost no more than small ones). A point counts only if tracking it back
from where it went in ``f`` — a fresh search, not one started at the answer — lands within
``max_forward_backward_px`` (crop pixels) of where it started.
"""

from __future__ import annotations

import numpy as np

from emoforge.labeling.face_model import FACE_OVAL

LANDMARKS = 478
FOREHEAD, CHIN, UPPER_LIP = 10, 152, 0
_INSIDE_OUTLINE = np.ones(LANDMARKS, dtype=bool)
_INSIDE_OUTLINE[list(FACE_OVAL)] = False


def trackable_landmarks(mesh_px: np.ndarray) -> np.ndarray:
    """Indices of the landmarks above the upper lip along the face's own forehead-to-chin axis
    in the image (the 2-D version of :func:`emoforge.labeling.pose.rigid_landmarks`), less the
    face's outline."""
    points = np.asarray(mesh_px, dtype=np.float64)[:, :2]
    down = points[CHIN] - points[FOREHEAD]
    down /= max(float(np.linalg.norm(down)), 1e-9)
    along = (points - points[FOREHEAD]) @ down
    cutoff = along[UPPER_LIP] - 0.02 * (along[CHIN] - along[UPPER_LIP])
    return np.flatnonzero((along < cutoff) & _INSIDE_OUTLINE)


class LandmarkFlow:
    """Lucas-Kanade tracking of a mesh's upper-face landmarks into the next frame.

    Keeps the last frames' grey crops (by frame array identity and crop region), so a face
    followed from frame to frame costs one crop conversion per frame, not two.
    """

    def __init__(self, face_px: float = 192.0, window_px: int = 11, pyramid_levels: int = 2,
                 max_points: int = 100, max_forward_backward_px: float = 0.5, max_iterations: int = 20):
        self.face_px = float(face_px)  # the crop is halved until the face's larger side is at most this
        self.window_px = int(window_px)
        self.pyramid_levels = int(pyramid_levels)
        self.max_points = int(max_points)
        self.max_forward_backward_px = float(max_forward_backward_px)
        self.max_iterations = int(max_iterations)  # Lucas-Kanade iterations per pyramid level
        self._cache: list[tuple[np.ndarray, tuple, int, np.ndarray]] = []  # (frame, region, halvings, grey crop)

    def _grey(self, rgb: np.ndarray, region: tuple, halvings: int) -> np.ndarray:
        import cv2

        for frame, cached_region, cached_halvings, grey in self._cache:
            if frame is rgb and cached_region == region and cached_halvings == halvings:
                return grey
        x0, y0, x1, y1 = region
        crop = rgb[y0:y1, x0:x1]
        if halvings:  # area average over whole 2^h blocks, then grey: the cheapest order
            crop = cv2.resize(crop, ((x1 - x0) >> halvings, (y1 - y0) >> halvings), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        self._cache.append((rgb, region, halvings, grey))
        return grey

    def _region(self, previous_rgb: np.ndarray, needed: np.ndarray, halvings: int, slack: float) -> tuple:
        """A cached region of ``previous_rgb`` holding ``needed`` (x0, y0, x1, y1), else ``needed`` grown by ``slack``."""
        for frame, region, cached_halvings, _ in self._cache:
            if frame is previous_rgb and cached_halvings == halvings and region[0] <= needed[0] and \
                    region[1] <= needed[1] and region[2] >= needed[2] and region[3] >= needed[3]:
                return region
        height, width = previous_rgb.shape[:2]
        step = 2**halvings  # whole blocks, so the halvings are exact area averages
        x0, y0 = int(max(0, needed[0] - slack)), int(max(0, needed[1] - slack))
        x1, y1 = int(min(width, needed[2] + slack)), int(min(height, needed[3] + slack))
        return x0, y0, x0 + (x1 - x0) // step * step, y0 + (y1 - y0) // step * step

    def flow(self, previous_rgb: np.ndarray, rgb: np.ndarray, previous_mesh_px: np.ndarray) -> np.ndarray:
        """``(478, 2)`` float32 displacement in frame pixels of each tracked landmark from the
        previous frame to this one; NaN for landmarks not tracked or failing the check.

        The search starts where each point was (this frame's mesh is no starting guess: on a
        head held at 30° yaw MediaPipe's landmarks are off enough to lead Lucas-Kanade with a
        level less into wrong minima, and velocity error doubled in those scenes)."""
        import cv2

        self._cache = [entry for entry in self._cache if entry[0] is previous_rgb or entry[0] is rgb]
        out = np.full((LANDMARKS, 2), np.nan, dtype=np.float32)
        mesh = np.asarray(previous_mesh_px, dtype=np.float64)
        if not np.isfinite(mesh[:, :2]).all():
            return out
        low, high = mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)
        side = float(max(high[0] - low[0], high[1] - low[1], 1.0))
        halvings = max(0, int(np.ceil(np.log2(side / self.face_px))))  # the face ends up face_px/2 to face_px
        scale = 0.5**halvings
        margin = 0.1 * side + self.window_px * 2 ** (self.pyramid_levels - 1) / scale  # half a coarsest window
        needed = np.r_[low - margin, high + margin]
        region = self._region(previous_rgb, needed, halvings, slack=0.1 * side)
        x0, y0, x1, y1 = region
        if min(x1 - x0, y1 - y0) * scale < 2 * self.window_px:
            return out
        before = self._grey(previous_rgb, region, halvings)
        after = self._grey(rgb, region, halvings)
        index = trackable_landmarks(mesh)
        start = ((mesh[index, :2] - [x0, y0]) * scale).astype(np.float32)
        if len(index) > self.max_points:
            texture = cv2.cornerMinEigenVal(cv2.pyrDown(before), 3)  # at half size: a ranking, cheaply
            pixel = np.clip(np.round(start / 2).astype(np.int64), 0, [texture.shape[1] - 1, texture.shape[0] - 1])
            best = np.argsort(-texture[pixel[:, 1], pixel[:, 0]], kind="stable")[: self.max_points]
            index, start = index[best], start[best]
        start = start.reshape(-1, 1, 2)
        window = (self.window_px, self.window_px)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.max_iterations, 0.03)
        moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, start, None, winSize=window,
                                                   maxLevel=self.pyramid_levels, criteria=criteria)
        # back from where each point went, unguided: an independent check, not a return to the start
        back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, moved, None, winSize=window,
                                                       maxLevel=self.pyramid_levels, criteria=criteria)
        ok = (found.ravel() == 1) & (found_back.ravel() == 1)
        ok &= np.linalg.norm((back - start).reshape(-1, 2), axis=1) < self.max_forward_backward_px
        out[index[ok]] = ((moved - start).reshape(-1, 2)[ok] / scale).astype(np.float32)
        return out
