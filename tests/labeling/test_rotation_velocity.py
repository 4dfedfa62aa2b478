import numpy as np
import pytest

from emoforge.labeling.rotation import axis_angle_to_matrix, geodesic_angle_deg, euler_to_matrix
from emoforge.labeling.velocity import runs, smooth_rotations, velocity_deg_per_frame


def _random_rotation(rng):
    return axis_angle_to_matrix(rng.normal(size=3), rng.uniform(0, 180))


def _constant_speed_track(rng, n_frames, deg_per_frame):
    axis = rng.normal(size=3)
    start = _random_rotation(rng)
    return start @ axis_angle_to_matrix(np.broadcast_to(axis, (n_frames, 3)), deg_per_frame * np.arange(n_frames))


@pytest.mark.parametrize("deg_per_frame", [0.05, 1.3, 7.0])
def test_constant_speed_about_random_axis_gives_that_speed(deg_per_frame):
    rng = np.random.default_rng(int(deg_per_frame * 100))
    track = _constant_speed_track(rng, 40, deg_per_frame)
    velocity = velocity_deg_per_frame(track, np.ones(40, bool))
    np.testing.assert_allclose(velocity, deg_per_frame, rtol=1e-9, atol=1e-9)
    # a global rotation of the camera (left) or of the head model (right) changes nothing
    glob = _random_rotation(rng)
    np.testing.assert_allclose(velocity_deg_per_frame(glob @ track, np.ones(40, bool)), deg_per_frame, atol=1e-9)
    # per second at 25 fps
    assert velocity.mean() * 25 == pytest.approx(deg_per_frame * 25)


def test_atan2_form_keeps_tiny_angles():
    rot = euler_to_matrix(10.0, -5.0, 3.0)
    step = axis_angle_to_matrix(np.array([0.3, -0.5, 0.8]), 1e-6)
    assert geodesic_angle_deg(rot, rot @ step) == pytest.approx(1e-6, rel=1e-5)


def test_velocity_never_crosses_cuts_or_gaps():
    rng = np.random.default_rng(3)
    track = _constant_speed_track(rng, 12, 2.0)
    valid = np.ones(12, bool)
    valid[5] = False
    shot = np.array([0] * 9 + [1] * 3)
    assert runs(valid, shot) == [(0, 5), (6, 9), (9, 12)]
    velocity = velocity_deg_per_frame(track, valid, shot)
    assert np.isnan(velocity[5])
    np.testing.assert_allclose(velocity[~np.isnan(velocity)], 2.0, atol=1e-9)
    single = velocity_deg_per_frame(track[:1], np.ones(1, bool))
    assert np.isnan(single).all()


def test_smoothing_keeps_a_steady_turn_and_removes_jitter():
    rng = np.random.default_rng(7)
    n = 60
    track = _constant_speed_track(rng, n, 1.0)
    valid = np.ones(n, bool)
    smooth = smooth_rotations(track, valid, sigma_frames=2.0)
    # a steady turn keeps its speed, at the ends of the run too (local linear fit)
    np.testing.assert_allclose(velocity_deg_per_frame(smooth, valid), 1.0, atol=0.02)
    # jitter of 0.5° per axis inflates the raw speed; smoothing brings it back near 1°/frame
    noise = axis_angle_to_matrix(rng.normal(size=(n, 3)), np.abs(rng.normal(0, 0.5 * np.sqrt(3), n)))
    noisy = track @ noise
    raw = velocity_deg_per_frame(noisy, valid)
    smoothed = velocity_deg_per_frame(smooth_rotations(noisy, valid, sigma_frames=2.0), valid)
    assert np.mean(raw) > 1.3
    assert abs(np.mean(smoothed[5:-5]) - 1.0) < 0.15
    assert np.mean(np.abs(smoothed - 1.0)) < 0.5 * np.mean(np.abs(raw - 1.0))
    # a frame without a pose passes through untouched
    valid[30] = False
    broken = noisy.copy()
    broken[30] = np.nan
    out = smooth_rotations(broken, valid, sigma_frames=2.0)
    assert np.isnan(out[30]).all() and np.isfinite(out[29]).all()


def test_fast_shake_keeps_its_speed_slow_turn_keeps_its_smoothing():
    """σ = 3 frames loses about half a 1.5 Hz shake's speed; the speed blend restores it, and
    leaves a slow turn (below 30°/s) on the heavily smoothed velocity."""
    from emoforge.labeling.rotation import euler_to_matrix
    from emoforge.labeling.velocity import blend_by_speed, smooth_rotations, velocity_deg_per_frame

    fps, t = 25.0, np.arange(100) / 25.0
    valid = np.ones(len(t), dtype=bool)
    for freq_hz, amplitude_deg, blended in ((1.5, 20.0, True), (0.2, 10.0, False)):
        yaw = amplitude_deg * np.sin(2 * np.pi * freq_hz * t)
        rotations = euler_to_matrix(yaw, np.zeros_like(t), np.zeros_like(t))
        truth = velocity_deg_per_frame(rotations, valid) * fps
        heavy = velocity_deg_per_frame(smooth_rotations(rotations, valid, sigma_frames=3.0), valid) * fps
        light = velocity_deg_per_frame(smooth_rotations(rotations, valid, sigma_frames=1.0), valid) * fps
        out = blend_by_speed(heavy, light, heavy, 30.0, 60.0)
        inner = slice(10, -10)
        if blended:
            assert heavy[inner].mean() < 0.6 * truth[inner].mean()
            assert abs(out[inner].mean() - truth[inner].mean()) < 0.15 * truth[inner].mean()
        else:
            np.testing.assert_allclose(out, heavy)
