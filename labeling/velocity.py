"""Head rotation velocity ``w^f`` per frame (paper §3.2, §4.1), raw and smoothed.

``w^f`` is the geodesic angle between the head rotations of frames ``f-1`` and ``f``
(:func:`emoforge.labeling.rotation.rotation_velocity_deg_per_frame`, the atan2 form),
in degrees per frame; times the frame rate it is degrees per second.

Velocity is only defined inside a *run*: consecutive frames of one shot that all have a
pose. A run's first frame copies the second's velocity (as the rotation module does);
a run of one frame, a frame without a pose and every frame of a different shot get NaN
— velocity is never taken across a cut or a gap.

Raw labels are never smoothed in place. Per-frame landmark jitter inflates the raw
velocity (independent pose noise of σ degrees per axis adds about σ·√6 degrees per
frame), so :func:`smooth_rotations` is a separate, named step: a zero-phase Gaussian
over time, applied to the rotation matrices of each run and projected back onto SO(3)
(the chordal L2 mean of the window), after which the velocity is recomputed.

With image flow (:mod:`emoforge.labeling.flow`, the labeler's default) each frame's rotation
step is measured from the pixels; :func:`chain_rotations` strings the steps into a rotation
sequence whose velocity is theirs, and that sequence is smoothed like the poses, with a
smaller σ (2 frames, blending to 0.5 for fast turns as below): the steps are not compressed
like the poses, and their jitter is a fraction of the poses'.

One σ does not fit every speed: σ = 3 frames (0.12 s at 25 fps) removes most jitter from
a talking head's slow turns but keeps only ~half of a 1.5 Hz shake's speed (the Gaussian's
gain at frequency ν is ``exp(-(2πνσ)²/2)``), where the jitter is small next to the motion
anyway. :func:`blend_by_speed` therefore moves from the heavily to the lightly smoothed
velocity as the heavily smoothed speed rises.
"""

from __future__ import annotations

import numpy as np

from emoforge.labeling.rotation import geodesic_angle_deg, rotation_velocity_deg_per_frame

DEFAULT_SMOOTHING_SIGMA_FRAMES = 3.0


def runs(valid: np.ndarray, shot_id: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` spans of consecutive valid frames that stay within one shot."""
    valid = np.asarray(valid, dtype=bool)
    shot_id = np.zeros(len(valid), dtype=np.int64) if shot_id is None else np.asarray(shot_id)
    spans, start = [], None
    for f in range(len(valid)):
        breaks = start is not None and (not valid[f] or shot_id[f] != shot_id[f - 1])
        if breaks:
            spans.append((start, f))
            start = None
        if valid[f] and start is None:
            start = f
    if start is not None:
        spans.append((start, len(valid)))
    return spans


def velocity_deg_per_frame(rotations: np.ndarray, valid: np.ndarray, shot_id: np.ndarray | None = None) -> np.ndarray:
    """``w^f`` for a ``(F, 3, 3)`` track: ``(F,)`` degrees per frame, NaN outside runs of ≥ 2 frames."""
    rotations = np.asarray(rotations, dtype=np.float64)
    velocity = np.full(len(rotations), np.nan)
    for start, stop in runs(valid, shot_id):
        if stop - start >= 2:
            velocity[start:stop] = rotation_velocity_deg_per_frame(rotations[start:stop])
    return velocity


def project_to_rotation(matrices: np.ndarray) -> np.ndarray:
    """The nearest rotation (Frobenius) to each ``(..., 3, 3)`` matrix, via SVD."""
    u, _, vt = np.linalg.svd(matrices)
    det = np.linalg.det(u @ vt)
    fix = np.ones(matrices.shape[:-2] + (3,))
    fix[..., 2] = np.sign(det)
    return (u * fix[..., None, :]) @ vt


def smooth_rotations(
    rotations: np.ndarray,
    valid: np.ndarray,
    shot_id: np.ndarray | None = None,
    sigma_frames: float = DEFAULT_SMOOTHING_SIGMA_FRAMES,
) -> np.ndarray:
    """Gaussian-smoothed rotations, run by run (never across a cut or gap); invalid frames pass through.

    Each frame's smoothed matrix is a Gaussian-weighted *local linear* fit of the run's
    matrices around it (element by element), projected onto SO(3). Inside a run this is
    the plain Gaussian mean (the slope term cancels by symmetry); at a run's ends, where
    the window is cut, the linear term keeps a steady turn at its true speed instead of
    pulling the end frames inward.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    out = rotations.copy()
    if sigma_frames <= 0:
        return out
    radius = int(np.ceil(3 * sigma_frames))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma_frames) ** 2)
    for start, stop in runs(valid, shot_id):
        n = stop - start
        if n < 2:
            continue
        segment = rotations[start:stop].reshape(n, 9)
        index = np.arange(n)[:, None] + offsets[None, :]  # (n, 2r+1)
        w = weights[None, :] * ((index >= 0) & (index < n))
        values = segment[np.clip(index, 0, n - 1)]  # (n, 2r+1, 9)
        # weighted least squares of values ~ a + b * offset, per frame; the fit at offset 0 is a
        s0 = w.sum(axis=1)
        s1 = (w * offsets).sum(axis=1)
        s2 = (w * offsets**2).sum(axis=1)
        t0 = np.einsum("nk,nkc->nc", w, values)
        t1 = np.einsum("nk,nkc->nc", w * offsets, values)
        det = s0 * s2 - s1**2
        with np.errstate(invalid="ignore", divide="ignore"):
            local_linear = (s2[:, None] * t0 - s1[:, None] * t1) / det[:, None]
        mean = np.where((det > 1e-9)[:, None], local_linear, t0 / s0[:, None])  # (n, 9)
        out[start:stop] = project_to_rotation(mean.reshape(n, 3, 3))
    return out


def chain_rotations(
    rotations: np.ndarray,
    steps: np.ndarray,
    valid: np.ndarray,
    shot_id: np.ndarray | None = None,
    fallback: np.ndarray | None = None,
    max_step_deg: float = 30.0,
) -> np.ndarray:
    """Rotations rebuilt from per-frame steps, run by run: ``C_start = R_start``, ``C_f = step_f C_(f-1)``.

    ``steps`` ``(F, 3, 3)`` is the measured rotation from frame ``f-1`` to ``f``. Where it is NaN
    (not measured) or turns more than ``max_step_deg`` (a failed measurement), the step of
    ``fallback`` — e.g. the smoothed rotations — or else of ``rotations`` is taken.
    Consecutive chained rotations differ exactly by the steps, so the velocity of the chain
    is the velocity of the steps; the chain's drift from the absolute poses does not matter
    for it. Invalid frames pass through as NaN."""
    rotations = np.asarray(rotations, dtype=np.float64)
    fallback = rotations if fallback is None else np.asarray(fallback, dtype=np.float64)
    chain = np.full_like(rotations, np.nan)
    steps = np.asarray(steps, dtype=np.float64).copy()
    measured = np.isfinite(steps).all(axis=(1, 2))
    turn = geodesic_angle_deg(np.eye(3), np.where(measured[:, None, None], steps, np.eye(3)))
    steps[measured & (turn > max_step_deg)] = np.nan
    for start, stop in runs(valid, shot_id):
        chain[start] = rotations[start]
        for f in range(start + 1, stop):
            step = steps[f]
            if not np.isfinite(step).all():
                step = fallback[f] @ fallback[f - 1].T
            chain[f] = step @ chain[f - 1]
    return chain


def blend_by_speed(heavy: np.ndarray, light: np.ndarray, speed: np.ndarray, start: float, full: float) -> np.ndarray:
    """``heavy`` where ``speed < start``, ``light`` where ``speed >= full``, linear in between (NaN stays NaN).

    ``heavy``/``light``: the same velocity from heavily and lightly smoothed rotations;
    ``speed``: the heavy one in the unit of ``start`` and ``full`` (degrees per second)."""
    weight = np.clip((np.asarray(speed, dtype=np.float64) - start) / max(full - start, 1e-9), 0.0, 1.0)
    return (1.0 - weight) * np.asarray(heavy, dtype=np.float64) + weight * np.asarray(light, dtype=np.float64)
