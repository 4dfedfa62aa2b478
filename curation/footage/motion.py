"""Known head motion for generated footage: pose trajectories and blinks.

Every trajectory is a smooth, closed-form function of time, so a frame at any
timestamp (constant or variable frame rate, motion-blur sub-frames, dissolves that
run a scene past its end) has an exact pose, and its rotation velocity is exact too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoforge.labeling.rotation import euler_to_matrix


@dataclass(frozen=True)
class MotionStyle:
    """How a scene's head moves: amplitude (degrees) and frequency range (Hz) per axis."""

    amplitude_deg: tuple[float, float, float]  # yaw, pitch, roll
    frequency_hz: tuple[float, float]
    offset_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sway_fraction: float = 0.03  # translation sway, as a fraction of the face width


# Calm talking, lively talking, fast shaking (motion blur), held extreme pose, idle listener.
STYLES = {
    "calm": MotionStyle((6.0, 4.0, 2.5), (0.08, 0.35)),
    "lively": MotionStyle((16.0, 9.0, 6.0), (0.15, 0.6)),
    "fast": MotionStyle((28.0, 10.0, 8.0), (0.9, 1.6), sway_fraction=0.05),
    "extreme": MotionStyle((6.0, 4.0, 3.0), (0.1, 0.3)),
    "idle": MotionStyle((3.0, 2.0, 1.5), (0.05, 0.2), sway_fraction=0.01),
}


@dataclass(frozen=True)
class PoseTrajectory:
    """yaw/pitch/roll(t) = offset + sum_k a_k sin(2π f_k t + φ_k), per axis; sway likewise."""

    offset_deg: np.ndarray  # (3,)
    amplitude_deg: np.ndarray  # (3, K)
    frequency_hz: np.ndarray  # (3, K)
    phase_rad: np.ndarray  # (3, K)
    sway_amplitude: np.ndarray  # (2, K): x, y sway as a fraction of the face width
    sway_frequency_hz: np.ndarray  # (2, K)
    sway_phase_rad: np.ndarray  # (2, K)

    @classmethod
    def random(cls, style: MotionStyle, rng: np.random.Generator, components: int = 3) -> "PoseTrajectory":
        low, high = style.frequency_hz
        # Split each axis' amplitude over K sinusoids so the peak stays within it.
        weights = rng.dirichlet(np.ones(components), size=3)
        amplitude = np.asarray(style.amplitude_deg)[:, None] * weights
        offset = np.asarray(style.offset_deg, dtype=np.float64)
        return cls(
            offset_deg=offset,
            amplitude_deg=amplitude,
            frequency_hz=rng.uniform(low, high, size=(3, components)),
            phase_rad=rng.uniform(0, 2 * np.pi, size=(3, components)),
            sway_amplitude=style.sway_fraction * rng.dirichlet(np.ones(components), size=2),
            sway_frequency_hz=rng.uniform(0.05, 0.3, size=(2, components)),
            sway_phase_rad=rng.uniform(0, 2 * np.pi, size=(2, components)),
        )

    def euler_deg(self, time_s) -> np.ndarray:
        """(yaw, pitch, roll) in degrees at each time: shape ``(T, 3)``."""
        time_s = np.atleast_1d(np.asarray(time_s, dtype=np.float64))
        waves = np.sin(2 * np.pi * self.frequency_hz[None] * time_s[:, None, None] + self.phase_rad[None])
        return self.offset_deg[None] + (self.amplitude_deg[None] * waves).sum(-1)  # (T, 3)

    def rotation(self, time_s) -> np.ndarray:
        """Head rotation matrices at each time: ``(T, 3, 3)`` (convention: labeling/rotation.py)."""
        euler = self.euler_deg(time_s)
        return euler_to_matrix(euler[:, 0], euler[:, 1], euler[:, 2])

    def sway(self, time_s) -> np.ndarray:
        """Head translation sway in the image plane, in face widths: ``(T, 2)``."""
        time_s = np.atleast_1d(np.asarray(time_s, dtype=np.float64))
        waves = np.sin(2 * np.pi * self.sway_frequency_hz[None] * time_s[:, None, None] + self.sway_phase_rad[None])
        return (self.sway_amplitude[None] * waves).sum(-1)


def blink_track(time_s: np.ndarray, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure in [0, 1] at each time: blinks every 2-6 s, each ~0.2 s long."""
    time_s = np.asarray(time_s, dtype=np.float64)
    closure = np.zeros_like(time_s)
    blink_at = rng.uniform(0.3, 2.5)
    while blink_at < duration_s + 1.0:
        length_s = rng.uniform(0.15, 0.25)
        phase = (time_s - blink_at) / length_s  # 0..1 across the blink
        inside = (phase >= 0) & (phase <= 1)
        closure[inside] = np.maximum(closure[inside], np.sin(np.pi * phase[inside]))
        blink_at += rng.uniform(2.0, 6.0)
    return closure
