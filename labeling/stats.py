"""The paper's Table 2 statistics of head rotation velocity (§4.5, "the Impact of the Speed Layer").

- Mean Velocity: the mean of the clips' mean velocities (each clip counts once).
- Velocity Variance: "the average variance of the velocities across individual video
  sequences" — the mean of within-clip variances.
- VMV (Variance of Mean Velocities): "the variance of the mean velocities across
  different clips".

Variances are population variances (``ddof=0``) by default; frames with a NaN
velocity (no face, a cut) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoforge.errors import UserError


@dataclass(frozen=True)
class ClipVelocityStats:
    mean_velocity: float
    velocity_variance: float
    frames: int


@dataclass(frozen=True)
class SetVelocityStats:
    mean_velocity: float
    velocity_variance: float
    variance_of_mean_velocities: float
    clips: int
    frames: int


def clip_velocity_stats(velocity: np.ndarray, ddof: int = 0) -> ClipVelocityStats:
    """Mean and variance of one clip's velocities (any unit; the result is in the same unit)."""
    values = np.asarray(velocity, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size <= ddof:
        raise UserError(f"a clip needs more than {ddof} frames with a velocity, got {values.size}")
    return ClipVelocityStats(float(values.mean()), float(values.var(ddof=ddof)), int(values.size))


def set_velocity_stats(velocities: list[np.ndarray], ddof: int = 0) -> SetVelocityStats:
    """Table 2's three numbers for a set of clips."""
    clips = [clip_velocity_stats(v, ddof=ddof) for v in velocities]
    if len(clips) <= ddof:
        raise UserError(f"a set needs more than {ddof} clips, got {len(clips)}")
    means = np.array([c.mean_velocity for c in clips])
    return SetVelocityStats(
        mean_velocity=float(means.mean()),
        velocity_variance=float(np.mean([c.velocity_variance for c in clips])),
        variance_of_mean_velocities=float(means.var(ddof=ddof)),
        clips=len(clips),
        frames=int(sum(c.frames for c in clips)),
    )
