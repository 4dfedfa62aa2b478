"""Weight-free mouth–audio synchrony: which face speaks, and is the audio offset.

A speaking mouth opens with the voice. The mouth opening of a face is the inner-lip
gap (mesh points 13 and 14) over the face height (points 10 to 152), from the 3-D mesh
so that a turned head does not shrink it. The audio envelope is the log RMS of the
16 kHz samples within each video frame. The synchrony score of a face track is the
largest Pearson correlation of the two, over offsets ``k`` in ``[-max, +max]`` frames,
where offset ``k`` pairs mouth frame ``f + k`` with audio frame ``f`` (``k > 0``: the
picture lags the sound). The best offset flags A/V misalignment; the face with the
clearly highest score is the one that speaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152
MIN_SYNC_FRAMES = 25
DEFAULT_MAX_OFFSET_FRAMES = 5


@dataclass(frozen=True)
class SyncResult:
    score: float  # best correlation, in [-1, 1]; NaN when there are too few frames
    offset_frames: int  # the offset with the best correlation
    frames: int  # frames that entered the correlation at offset 0


def mouth_opening(mesh_xyz: np.ndarray) -> np.ndarray:
    """``(..., 478, 3)`` meshes -> ``(...)`` inner-lip gap over face height (NaN for NaN meshes)."""
    mesh = np.asarray(mesh_xyz, dtype=np.float64)
    gap = np.linalg.norm(mesh[..., UPPER_INNER_LIP, :] - mesh[..., LOWER_INNER_LIP, :], axis=-1)
    height = np.linalg.norm(mesh[..., FOREHEAD, :] - mesh[..., CHIN, :], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return gap / height


def log_envelope(envelope: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(envelope, dtype=np.float64) + 1e-4)


def _correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < MIN_SYNC_FRAMES:
        return float("nan"), n
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return (float((a * b).sum() / denom) if denom > 0 else 0.0), n


def sync_score(
    mouth: np.ndarray, log_env: np.ndarray, max_offset_frames: int = DEFAULT_MAX_OFFSET_FRAMES
) -> SyncResult:
    """Best correlation of mouth opening and log envelope over offsets (both ``(F,)``, NaN = no data)."""
    mouth = np.asarray(mouth, dtype=np.float64)
    log_env = np.asarray(log_env, dtype=np.float64)
    n = len(mouth)
    best, best_k, frames0 = float("nan"), 0, 0
    for k in range(-max_offset_frames, max_offset_frames + 1):
        # mouth[f + k] against audio[f]
        lo, hi = max(0, -k), min(n, n - k)
        if hi - lo <= 0:
            continue
        corr, frames = _correlation(mouth[lo + k : hi + k], log_env[lo:hi])
        if k == 0:
            frames0 = frames
        if np.isfinite(corr) and not (corr <= best):
            best, best_k = corr, k
    return SyncResult(best, best_k if np.isfinite(best) else 0, frames0)


def pick_speaker(scores: dict[int, SyncResult], min_score: float = 0.2, min_margin: float = 0.1) -> int | None:
    """The track whose score is at least ``min_score`` and beats every other by ``min_margin``, else None."""
    ranked = sorted(
        ((r.score, track) for track, r in scores.items() if np.isfinite(r.score)), reverse=True
    )
    if not ranked or ranked[0][0] < min_score:
        return None
    if len(ranked) > 1 and ranked[0][0] - ranked[1][0] < min_margin:
        return None
    return ranked[0][1]
