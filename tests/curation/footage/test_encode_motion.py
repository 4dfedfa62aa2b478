"""Encoding round trips and known motion (no renderer needed)."""

from fractions import Fraction

import numpy as np
import pytest

from emoforge.curation.footage.encode import FORMATS, VideoFormat, VideoWriter, frame_times_s
from emoforge.curation.footage.motion import STYLES, PoseTrajectory, blink_track
from emoforge.labeling.rotation import geodesic_angle_deg, matrix_to_euler


def test_trajectory_stays_within_its_amplitude_and_is_smooth():
    rng = np.random.default_rng(3)
    style = STYLES["lively"]
    trajectory = PoseTrajectory.random(style, rng)
    times = np.arange(0, 20, 1 / 25)
    euler = trajectory.euler_deg(times)
    assert np.all(np.abs(euler) <= np.asarray(style.amplitude_deg) + 1e-9)
    # Euler angles from the matrices agree with the closed form.
    np.testing.assert_allclose(matrix_to_euler(trajectory.rotation(times)), euler, atol=1e-9)
    # No jumps: a lively head turns well under 10° between frames at 25 fps.
    steps = geodesic_angle_deg(trajectory.rotation(times[:-1]), trajectory.rotation(times[1:]))
    assert steps.max() < 10 and steps.mean() > 0.05


def test_blinks_are_brief_and_periodic():
    times = np.arange(0, 30, 0.005)
    closure = blink_track(times, 30, np.random.default_rng(0))
    closed = closure > 0.5
    onsets = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 4 <= len(onsets) <= 16
    assert closed.mean() < 0.08


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_round_trips(tmp_path, fmt):
    import av

    rng = np.random.default_rng(0)
    times = frame_times_s(fmt, 0.5, rng)
    path = tmp_path / f"clip.{fmt.container}"
    with VideoWriter(path, fmt) as writer:
        for k, time_s in enumerate(times):
            frame = np.full((fmt.height, fmt.width, 3), 40, np.uint8)
            frame[: fmt.height // 4, : fmt.width // 4] = 230  # marks the displayed top-left
            writer.write_frame(frame, time_s)
        writer.write_audio(0.2 * np.sin(np.arange(fmt.audio_rate_hz // 2) * 2 * np.pi * 440 / fmt.audio_rate_hz))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert len(frames) == len(times)
        np.testing.assert_allclose([f.time for f in frames], times, atol=2e-3)
        assert container.streams.audio[0].sample_rate == fmt.audio_rate_hz
        displayed = np.rot90(frames[0].to_ndarray(format="rgb24"), k=frames[0].rotation // 90)
    assert displayed.shape[:2] == (fmt.height, fmt.width)
    assert displayed[5, 5].mean() > 200 and displayed[-5, -5].mean() < 80


def test_variable_frame_rate_times_are_irregular_and_increasing():
    fmt = VideoFormat("vfr", "mp4", "libx264", "aac", 64, 64, Fraction(25), variable_frame_rate=True)
    times = frame_times_s(fmt, 5.0, np.random.default_rng(1))
    steps = np.diff(times)
    assert np.all(steps > 0) and len(np.unique(np.round(steps, 3))) >= 3
    assert times[-1] < 5.0
