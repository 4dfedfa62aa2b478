"""Hard-cut detection while frames stream past, so face tracks and velocities never span a cut.

The score of a frame is the mean absolute change of a 64 x 36 HSV thumbnail from the
previous frame's (hue, saturation and value averaged, 0-255 scale), as PySceneDetect's
content detector scores frames; a frame scoring at least ``threshold`` starts a new shot
unless the current shot is shorter than ``min_shot_frames``. Callers that already know
the shots (curation's scene split) pass them instead.
"""

from __future__ import annotations

import numpy as np


class CutDetector:
    def __init__(self, threshold: float = 30.0, min_shot_frames: int = 8):
        self.threshold = threshold
        self.min_shot_frames = min_shot_frames
        self._previous = None
        self._since_cut = 0

    def is_cut(self, rgb: np.ndarray) -> bool:
        """Feed the next frame; True when it starts a new shot (never the first frame)."""
        import cv2

        height, width = rgb.shape[:2]
        if width >= 256 and height >= 144:  # area-average in two steps: the same thumbnail (±1 level), 40 % cheaper
            rgb = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        thumb = cv2.cvtColor(cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
        thumb = thumb.astype(np.float32)
        thumb[..., 0] *= 255.0 / 180.0  # OpenCV hue is 0-179
        cut = False
        if self._previous is not None:
            diff = np.abs(thumb - self._previous)
            diff[..., 0] = np.minimum(diff[..., 0], 255.0 - diff[..., 0])  # hue is circular
            score = float(diff.mean())
            cut = score >= self.threshold and self._since_cut >= self.min_shot_frames
        self._previous = thumb
        self._since_cut = 0 if cut else self._since_cut + 1
        return cut


def shot_ids_from_starts(n_frames: int, shot_starts: list[int]) -> np.ndarray:
    """``(F,)`` int32 shot index of each frame, from the frames where shots start (0 implied)."""
    shot_id = np.zeros(n_frames, dtype=np.int32)
    for start in sorted(s for s in set(shot_starts) if 0 < s < n_frames):
        shot_id[start:] += 1
    return shot_id
