"""The Face Locator's face region (paper §3.2): ``M = ∪_{i=1..f} M^i``, the union of a clip's face boxes.

A box covers every cell it overlaps, at frame size (cells are pixels) and at latent
size (cells are ``8 x 8`` pixel blocks, the SD VAE's downsampling): cell ``c`` spans
``[c·s, (c+1)·s)`` and is in the mask when that span meets the box on both axes. The
latent mask of a ``H x W`` frame is ``(H // 8, W // 8)``.
"""

from __future__ import annotations

import numpy as np

LATENT_SCALE = 8


def union_mask(boxes_xyxy_px: np.ndarray, height_px: int, width_px: int, cell_px: int = 1) -> np.ndarray:
    """``(N, 4)`` boxes (NaN rows skipped) -> ``(height // cell, width // cell)`` bool mask."""
    rows, cols = height_px // cell_px, width_px // cell_px
    mask = np.zeros((rows, cols), dtype=bool)
    boxes = np.asarray(boxes_xyxy_px, dtype=np.float64).reshape(-1, 4)
    for x0, y0, x1, y1 in boxes[np.all(np.isfinite(boxes), axis=1)]:
        if x1 <= x0 or y1 <= y0:
            continue
        c0, c1 = int(np.floor(x0 / cell_px)), int(np.ceil(x1 / cell_px))
        r0, r1 = int(np.floor(y0 / cell_px)), int(np.ceil(y1 / cell_px))
        mask[max(r0, 0) : min(r1, rows), max(c0, 0) : min(c1, cols)] = True
    return mask


def face_region_masks(boxes_xyxy_px: np.ndarray, height_px: int, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's union mask at frame size ``(H, W)`` and at latent size ``(H // 8, W // 8)``."""
    return (
        union_mask(boxes_xyxy_px, height_px, width_px, 1),
        union_mask(boxes_xyxy_px, height_px, width_px, LATENT_SCALE),
    )
