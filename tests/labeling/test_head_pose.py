import numpy as np
import pytest

from emoforge.labeling.face_model import CHIN, FOREHEAD, frontal_rotation, mirror_index
from emoforge.labeling.pose import Intrinsics, estimate_pose_track
from emoforge.labeling.rotation import euler_to_matrix, geodesic_angle_deg, matrix_to_euler


def symmetric_face_mm(seed=0):
    """A random face with MediaPipe's mirror symmetry, frontal (nose toward -z), in mm."""
    rng = np.random.default_rng(seed)
    mirror = mirror_index()
    face = np.zeros((478, 3))
    for i in range(478):
        j = mirror[i]
        if j < i:
            continue
        x = 0.0 if j == i else rng.uniform(5, 70)
        y = rng.uniform(-60, 50)
        z = -30 * np.cos(x / 80) * np.cos(y / 90) + rng.normal(0, 2)
        face[i] = [-x, y, z]
        if j != i:
            face[j] = [x, y, z]  # the subject's left (the larger index) is at +x
    face[FOREHEAD] = [0, -75, -20]
    face[CHIN] = [0, 70, -20]
    face[0] = [0, 25, -35]  # upper lip
    for left, right in ((263, 33), (362, 133)):
        x = 45.0 if left == 263 else 15.0
        face[left], face[right] = [x, -20, -22], [-x, -20, -22]
    face = face @ frontal_rotation(face)  # frontal by definition, whatever landmarks define it
    assert np.allclose(frontal_rotation(face), np.eye(3), atol=1e-9)
    return face - face.mean(axis=0)


def mediapipe_like(face_mm, rotations, translations_mm, intrinsics):
    """What MediaPipe reports, in pixels: the exact projection in x, y; z the depth along the
    line of sight to the face, relative to its centre, on the scale of x."""
    points = face_mm @ np.swapaxes(rotations, -1, -2) + translations_mm[:, None, :]  # (F, 478, 3)
    depth = points[..., 2]
    u = intrinsics.focal_px * points[..., 0] / depth + intrinsics.cx_px
    v = intrinsics.focal_px * points[..., 1] / depth + intrinsics.cy_px
    centre = points.mean(axis=1, keepdims=True)
    sight = centre / np.linalg.norm(centre, axis=-1, keepdims=True)
    distance = np.linalg.norm(centre, axis=-1)
    z = ((points - centre) * sight).sum(-1) * intrinsics.focal_px / distance
    return np.stack([u, v, z], axis=-1)


def _scene(n=30, seed=1):
    rng = np.random.default_rng(seed)
    euler = np.stack(
        [rng.uniform(-30, 30, n), rng.uniform(-20, 20, n), rng.uniform(-15, 15, n)], axis=1
    )
    rotations = euler_to_matrix(euler[:, 0], euler[:, 1], euler[:, 2])
    # off-centre in a 16:9 frame, ~10° off the optical axis at 600 mm
    translations = np.stack([rng.uniform(60, 120, n), rng.uniform(-80, -40, n), rng.uniform(550, 650, n)], axis=1)
    return rotations, translations


@pytest.mark.parametrize("method, tolerance_deg", [("pnp", 0.5), ("lift", 2.0)])
def test_pose_recovers_known_rotations(method, tolerance_deg):
    intrinsics = Intrinsics.for_frame(1280, 720)
    assert (intrinsics.cx_px, intrinsics.cy_px, intrinsics.focal_px) == (640.0, 360.0, 1280.0)
    rotations, translations = _scene()
    meshes = mediapipe_like(symmetric_face_mm(), rotations, translations, intrinsics)
    meshes[7] = np.nan  # a frame without a mesh
    track = estimate_pose_track(meshes, intrinsics, method)
    assert not track.valid[7] and track.valid.sum() == 29
    error = geodesic_angle_deg(track.rotation[track.valid], rotations[track.valid])
    assert error.max() < tolerance_deg
    assert np.isnan(track.euler_deg[7]).all()
    np.testing.assert_allclose(track.euler_deg[track.valid], matrix_to_euler(track.rotation[track.valid]))
    if method == "pnp":
        # 63 mm eyes in the model; the synthetic face has 60 mm between eye centres
        scale = 60.0 / 63.0
        np.testing.assert_allclose(track.translation_mm[0] * scale, translations[0], rtol=0.02, atol=3)
        assert np.nanmax(track.reprojection_px) < 0.5


def test_swapped_principal_point_is_measurably_wrong():
    right = Intrinsics.for_frame(1280, 720)
    swapped = Intrinsics(right.focal_px, right.cy_px, right.cx_px)  # the copied-code bug
    rotations, translations = _scene(seed=2)
    meshes = mediapipe_like(symmetric_face_mm(1), rotations, translations, right)
    good = geodesic_angle_deg(estimate_pose_track(meshes, right).rotation, rotations)
    bad = geodesic_angle_deg(estimate_pose_track(meshes, swapped).rotation, rotations)
    assert good.mean() < 0.3 and bad.mean() > 5 * good.mean() and bad.mean() > 3.0


def test_empty_and_unknown_method():
    intrinsics = Intrinsics.for_frame(640, 480)
    track = estimate_pose_track(np.full((3, 478, 3), np.nan), intrinsics)
    assert not track.valid.any()
    with pytest.raises(ValueError):
        estimate_pose_track(np.zeros((1, 478, 3)) + np.arange(478)[None, :, None], intrinsics, "magic")
