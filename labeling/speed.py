"""Speed buckets and the windowed speed embedding (paper §3.2, "Speed Layers").

The paper divides the range of head rotation velocity ``w^f`` into ``d`` buckets,
each with a centre ``c_i`` and a radius ``r_i``, and retargets ``w^f`` to

    s_i = tanh((w^f - c_i) / r_i * 3),        i = 1..d                      (§3.2)

and the embedding of frame ``f`` concatenates the vectors of its ±m neighbours:

    S^f = ⊕ {s^(f-m), ..., s^(f), ..., s^(f+m)}         shape (2m+1)·d      (§3.2)

The paper does not say where the centres and radii come from. Here they are fitted to
a corpus' velocity distribution, in one measured unit (degrees per second, so that a
bucket means the same speed at any frame rate): by default the bucket edges are the
``i/d`` quantiles of the corpus' velocities (every bucket holds the same share of
frames), ``c_i`` is the middle of bucket ``i`` and ``r_i`` its half-width. The fitted
buckets are saved beside the corpus (``speed_buckets.json``) so that training and
inference use exactly the same ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emoforge.errors import UserError

SPEED_BUCKETS_VERSION = 1
# The narrowest bucket a corpus gets, so that labels land in their true bucket: set at ~3x
# the labeler's mean velocity error on talking heads when that was 3.1°/s; with velocity
# from the image flow it is 1.3°/s mean, 5°/s p95 (docs/labeling.md), and 10 is kept.
CORPUS_MIN_WIDTH_DEG_PER_S = 10.0
VELOCITY_UNIT = "deg_per_s"


@dataclass(frozen=True)
class SpeedBuckets:
    """``d`` buckets over rotation velocity in degrees per second.

    ``edges_deg_per_s`` has ``d + 1`` increasing values; bucket ``i`` covers
    ``[edges[i], edges[i+1])``, with the outer buckets open-ended for assignment.
    """

    centres_deg_per_s: tuple[float, ...]
    radii_deg_per_s: tuple[float, ...]
    edges_deg_per_s: tuple[float, ...]
    window_m: int = 2
    method: str = "quantile"
    frames_fitted: int = 0
    unit: str = VELOCITY_UNIT
    version: int = SPEED_BUCKETS_VERSION

    def __post_init__(self):
        d = len(self.centres_deg_per_s)
        if d < 1 or len(self.radii_deg_per_s) != d or len(self.edges_deg_per_s) != d + 1:
            raise ValueError("speed buckets need d centres, d radii and d + 1 edges")
        if not all(r > 0 for r in self.radii_deg_per_s):
            raise ValueError(f"speed bucket radii must be positive: {self.radii_deg_per_s}")
        if self.window_m < 0:
            raise ValueError("window m must be >= 0")

    @property
    def d(self) -> int:
        return len(self.centres_deg_per_s)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "SpeedBuckets":
        data = json.loads(text)
        if data.get("version") != SPEED_BUCKETS_VERSION or data.get("unit") != VELOCITY_UNIT:
            raise UserError(
                f"speed buckets file has version {data.get('version')!r} and unit {data.get('unit')!r}; "
                f"expected version {SPEED_BUCKETS_VERSION} in {VELOCITY_UNIT}"
            )
        for key in ("centres_deg_per_s", "radii_deg_per_s", "edges_deg_per_s"):
            data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    def save(self, path) -> Path:
        from emoforge.labeling.labels import write_text_atomic

        return write_text_atomic(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path) -> "SpeedBuckets":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no speed buckets file at {path}")
        return cls.from_json(path.read_text())


def fit_speed_buckets(
    velocity_deg_per_s: np.ndarray,
    d: int = 8,
    window_m: int = 2,
    method: str = "quantile",
    max_deg_per_s: float | None = None,
    min_width_deg_per_s: float = 0.0,
) -> SpeedBuckets:
    """Fit up to ``d`` buckets to a corpus' velocities (NaNs, e.g. frames without a face, are ignored).

    ``method="quantile"`` (default): edges at the ``0, 1/d, ..., 1`` quantiles, so each
    bucket holds the same share of the corpus' frames. ``method="linear"``: ``d`` equal
    buckets from 0 to the 99th percentile (or ``max_deg_per_s``).

    ``min_width_deg_per_s``: a bucket narrower than the labels' own velocity error cannot
    be told from its neighbour (the labeler's error on talking heads is ~1.3°/s mean,
    ~5°/s p95, docs/labeling.md), so narrower buckets are merged upwards and the corpus
    gets fewer, wider buckets. 0 keeps exactly ``d``.
    """
    if d < 1:
        raise UserError(f"the number of speed buckets must be at least 1, got {d}")
    values = np.asarray(velocity_deg_per_s, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < d + 1:
        raise UserError(f"need at least {d + 1} frames with a velocity to fit {d} speed buckets, got {values.size}")
    if method == "quantile":
        edges = np.quantile(values, np.linspace(0.0, 1.0, d + 1))
    elif method == "linear":
        top = float(max_deg_per_s) if max_deg_per_s is not None else float(np.quantile(values, 0.99))
        edges = np.linspace(0.0, top, d + 1)
    else:
        raise UserError(f"unknown speed bucket method {method!r} (quantile, linear)")
    edges = _strictly_increasing(edges)
    if min_width_deg_per_s > 0:
        edges = _merge_narrow(edges, min_width_deg_per_s)
    centres = (edges[:-1] + edges[1:]) / 2.0
    radii = (edges[1:] - edges[:-1]) / 2.0
    return SpeedBuckets(
        centres_deg_per_s=tuple(float(c) for c in centres),
        radii_deg_per_s=tuple(float(r) for r in radii),
        edges_deg_per_s=tuple(float(e) for e in edges),
        window_m=window_m,
        method=method,
        frames_fitted=int(values.size),
    )


def _merge_narrow(edges: np.ndarray, min_width: float) -> np.ndarray:
    """Drop inner edges until every bucket is at least ``min_width`` wide (the last merges down)."""
    kept = [edges[0]]
    for edge in edges[1:-1]:
        if edge - kept[-1] >= min_width:
            kept.append(edge)
    if edges[-1] - kept[-1] < min_width and len(kept) > 1:
        kept.pop()
    kept.append(edges[-1])
    return np.asarray(kept)


def _strictly_increasing(edges: np.ndarray) -> np.ndarray:
    """Spread tied quantiles (a corpus with many identical speeds) so every bucket has width."""
    edges = np.asarray(edges, dtype=np.float64).copy()
    span = max(edges[-1] - edges[0], 1e-3)
    min_step = span * 1e-3
    for i in range(1, len(edges)):
        if edges[i] < edges[i - 1] + min_step:
            edges[i] = edges[i - 1] + min_step
    return edges


def speed_vectors(velocity_deg_per_s: np.ndarray, buckets: SpeedBuckets) -> np.ndarray:
    """``s_i = tanh((w - c_i) / r_i * 3)`` for each frame: ``(F,)`` -> ``(F, d)``; NaN stays NaN."""
    w = np.asarray(velocity_deg_per_s, dtype=np.float64)[..., None]
    centres = np.asarray(buckets.centres_deg_per_s)
    radii = np.asarray(buckets.radii_deg_per_s)
    return np.tanh((w - centres) / radii * 3.0)


def bucket_index(velocity_deg_per_s: np.ndarray, buckets: SpeedBuckets) -> np.ndarray:
    """The bucket each velocity falls in (its edge interval; outer buckets open-ended), -1 for NaN."""
    w = np.asarray(velocity_deg_per_s, dtype=np.float64)
    inner_edges = np.asarray(buckets.edges_deg_per_s[1:-1])
    index = np.searchsorted(inner_edges, w, side="right").astype(np.int64)
    index[~np.isfinite(w)] = -1
    return index


def speed_embedding(speed: np.ndarray, window_m: int) -> np.ndarray:
    """``S^f = ⊕ {s^(f-m) .. s^(f+m)}``: ``(F, d)`` -> ``(F, (2m+1)·d)``.

    Frames past either end of the clip repeat the edge frame (the paper does not say;
    this keeps a clip's first frames at their own speed rather than zero).
    """
    speed = np.asarray(speed)
    if speed.ndim != 2:
        raise ValueError(f"speed vectors must be (F, d), got shape {speed.shape}")
    n_frames = speed.shape[0]
    if n_frames == 0:
        return np.zeros((0, (2 * window_m + 1) * speed.shape[1]), dtype=speed.dtype)
    offsets = np.arange(-window_m, window_m + 1)
    index = np.clip(np.arange(n_frames)[:, None] + offsets[None, :], 0, n_frames - 1)  # (F, 2m+1)
    return speed[index].reshape(n_frames, -1)  # (F, (2m+1)·d), s^(f-m) first


def constant_speed_embedding(velocity_deg_per_s: float, buckets: SpeedBuckets, n_frames: int) -> np.ndarray:
    """Inference (§4.1): "we assign a constant speed value for each frame"."""
    if not math.isfinite(velocity_deg_per_s) or velocity_deg_per_s < 0:
        raise UserError(f"speed must be a finite non-negative number of degrees per second, got {velocity_deg_per_s}")
    speed = speed_vectors(np.full(n_frames, float(velocity_deg_per_s)), buckets)
    return speed_embedding(speed, buckets.window_m)
