"""Head velocity from the image flow: KLT on the face's landmarks, PnP steps, chained rotations."""

import numpy as np
import pytest

from test_head_pose import mediapipe_like, symmetric_face_mm
from emoforge.labeling.face_model import FACE_OVAL
from emoforge.labeling.pose import Intrinsics, estimate_pose_track, flow_steps, model_frames, subject_model
from emoforge.labeling.rotation import euler_to_matrix, geodesic_angle_deg
from emoforge.labeling.velocity import chain_rotations, velocity_deg_per_frame


def _turn(n, deg_per_frame, gain=1.0):
    """A head turning in yaw (and a little pitch) at a steady rate; ``gain`` < 1 scales the angles
    down, as MediaPipe's landmarks follow a turn only part of the way."""
    frames = np.arange(n)
    yaw = gain * (-10 + deg_per_frame * frames)
    pitch = gain * (3 + 0.3 * deg_per_frame * frames)
    return euler_to_matrix(yaw, pitch, np.zeros(n))


@pytest.mark.parametrize("gain, tolerance", [(1.0, 0.01), (0.8, 0.06)])
def test_flow_steps_measure_the_turn_that_compressed_landmarks_miss(gain, tolerance):
    """With landmarks that follow only 0.8 of the turn, velocity from consecutive poses is 0.8x
    truth; from the flow it is within a few percent (the steps are fitted at the landmarks'
    pose, so a pose that is off by a few degrees still costs a few percent of speed)."""
    intrinsics = Intrinsics.for_frame(1280, 720)
    face = symmetric_face_mm(3)
    n = 20
    truth = _turn(n, 1.0)
    translation = np.tile([30.0, -20.0, 600.0], (n, 1))
    meshes = mediapipe_like(face, _turn(n, 1.0, gain=gain), translation, intrinsics)  # compressed landmarks
    moved = mediapipe_like(face, truth, translation, intrinsics)[..., :2]  # where the pixels really go
    flow = np.full((n, 478, 2), np.nan)
    flow[1:] = moved[1:] - moved[:-1]
    flow[:, list(FACE_OVAL)] = np.nan  # the flow leaves the outline out
    track = estimate_pose_track(meshes, intrinsics, flow_px=flow)
    valid = track.valid
    from_poses = velocity_deg_per_frame(track.rotation, valid)
    chain = chain_rotations(track.rotation, track.step_rotation, valid)
    from_flow = velocity_deg_per_frame(chain, valid)
    true_speed = velocity_deg_per_frame(truth, valid)
    assert np.isnan(track.step_rotation[0]).all() and np.isfinite(track.step_rotation[1:]).all()
    assert from_poses.mean() == pytest.approx(gain * true_speed.mean(), rel=0.03)  # the landmarks' compression
    np.testing.assert_allclose(from_flow, true_speed, rtol=tolerance)


def test_flow_steps_need_enough_tracked_points_and_a_previous_pose():
    intrinsics = Intrinsics.for_frame(640, 480)
    face = symmetric_face_mm(4)
    rotations = _turn(3, 2.0)
    translations = np.tile([0.0, 0.0, 500.0], (3, 1))
    projected = mediapipe_like(face, rotations, translations, intrinsics)[..., :2]
    flow = np.full((3, 478, 2), np.nan)
    flow[1, :5] = (projected[1] - projected[0])[:5]  # too few points
    flow[2] = projected[2] - projected[1]
    rotations_missing = rotations.copy()
    rotations_missing[1] = np.nan  # and no pose before frame 2
    steps = flow_steps(face, rotations_missing, translations, flow, intrinsics)
    assert np.isnan(steps).all()
    steps = flow_steps(face, rotations, translations, flow, intrinsics)
    assert np.isnan(steps[:2]).all()
    assert geodesic_angle_deg(steps[2] @ rotations[1], rotations[2]) < 0.05


def test_chain_uses_the_fallback_where_a_step_is_missing_or_implausible():
    rotations = _turn(6, 2.0)
    valid = np.ones(6, bool)
    steps = np.full((6, 3, 3), np.nan)
    steps[1:] = rotations[1:] @ np.swapaxes(rotations[:-1], -1, -2)
    steps[3] = np.nan  # not measured
    steps[4] = euler_to_matrix(np.array([45.0]), np.zeros(1), np.zeros(1))[0]  # a failed measurement
    chain = chain_rotations(rotations, steps, valid, max_step_deg=30.0)
    np.testing.assert_allclose(velocity_deg_per_frame(chain, valid), velocity_deg_per_frame(rotations, valid),
                               atol=1e-9)
    shots = np.array([0, 0, 0, 1, 1, 1])
    split = chain_rotations(rotations, steps, valid, shots)
    np.testing.assert_allclose(split[3], rotations[3])  # each run starts from its own pose


def test_subject_model_is_the_neutral_face():
    """MediaPipe's meshes of an open mouth move the subnasale (the frontal definition's lower
    midline point) back and down; a model averaged over every frame of a talking track is
    then tilted, and every frame's pitch with it. The model from the closed-mouth, near-frontal
    frames is not."""
    intrinsics = Intrinsics.for_frame(1280, 720)
    face = symmetric_face_mm(5)
    n = 40
    rng = np.random.default_rng(0)
    euler = np.stack([rng.uniform(-8, 8, n), rng.uniform(-5, 5, n), rng.uniform(-3, 3, n)], axis=1)
    rotations = euler_to_matrix(euler[:, 0], euler[:, 1], euler[:, 2])
    translations = np.tile([0.0, 0.0, 600.0], (n, 1))
    talking = np.arange(n) % 2 == 1
    meshes = []
    for rotation, translation, open_mouth in zip(rotations, translations, talking):
        shape = face.copy()
        shape[13], shape[14] = face[0] + [0.0, 4.0, 0.0], face[0] + [0.0, 5.0, 0.0]  # inner lips, closed
        shape[14, 1] += 12.0 if open_mouth else 0.0  # the lower one drops
        if open_mouth:
            shape[2] += [0.0, 1.0, 3.0]  # what MediaPipe does to the subnasale
        meshes.append(mediapipe_like(shape, rotation[None], translation[None], intrinsics)[0])
    meshes = np.array(meshes)
    from emoforge.labeling.face_model import frontal_rotation
    from emoforge.labeling.pose import lift_mesh

    lifted = lift_mesh(meshes, intrinsics)
    initial = frontal_rotation(lifted)
    chosen = model_frames(meshes, initial)
    assert not chosen[talking].any() and 0 < chosen.sum() <= n // 2
    track = estimate_pose_track(meshes, intrinsics)
    closed = ~talking
    error = geodesic_angle_deg(track.rotation[closed], rotations[closed])
    assert error.max() < 0.3
    from emoforge.labeling.pose import _pnp

    everything = subject_model(lifted, initial)  # the model before: every frame
    before = _pnp(meshes, everything, initial, intrinsics)[0]
    assert geodesic_angle_deg(before[closed], rotations[closed]).mean() > 3 * error.mean() + 0.5


@pytest.mark.slow
def test_landmark_flow_follows_a_known_shift():
    import cv2

    from emoforge.labeling.flow import LandmarkFlow, trackable_landmarks

    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (480, 640)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    before = np.repeat(texture[..., None], 3, axis=2)
    shift = np.array([1.6, -0.8])
    after = cv2.warpAffine(before, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (640, 480),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    intrinsics = Intrinsics.for_frame(640, 480)
    mesh = mediapipe_like(symmetric_face_mm(), np.eye(3)[None], np.array([[0.0, 0.0, 450.0]]), intrinsics)[0]
    flow = LandmarkFlow(face_px=1000.0).flow(before, after, mesh)  # no downscaling: exact pixels
    tracked = np.flatnonzero(np.isfinite(flow[:, 0]))
    assert 0.9 * LandmarkFlow().max_points <= len(tracked) <= LandmarkFlow().max_points
    assert set(tracked) <= set(trackable_landmarks(mesh)) and not set(tracked) & set(FACE_OVAL)
    np.testing.assert_allclose(np.median(flow[tracked], axis=0), shift, atol=0.05)
    scaled = LandmarkFlow(face_px=120.0).flow(before, after, mesh)  # tracked on a downscaled crop
    np.testing.assert_allclose(np.nanmedian(scaled, axis=0), shift, atol=0.15)
