"""The talking-head renderer (curation/footage/head.py) and its portraits: truth must match pixels."""

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from emoforge.curation.footage.head import (  # noqa: E402
    CHIN,
    FOREHEAD,
    LIPS_INNER,
    Camera,
    HeadModel,
    detect_face_mesh,
    head_for,
    mesh_normalised_to_px,
)
from emoforge.curation.footage.portraits import PORTRAITS, load_portrait  # noqa: E402
from emoforge.labeling.rotation import euler_to_matrix  # noqa: E402

CAMERA = Camera(640, 480, focal_px=600.0)
FACE_WIDTH_PX = 170.0


@pytest.fixture(scope="module")
def head() -> HeadModel:
    return head_for("astronaut")


def _composite(render, grey: float = 110.0) -> np.ndarray:
    alpha = render.alpha[..., None]
    return (render.rgb * alpha + grey * (1.0 - alpha)).round().astype(np.uint8)


def _render(head, yaw=0.0, pitch=0.0, roll=0.0, **articulation):
    translation = head.rest_translation(CAMERA, (320.0, 250.0), FACE_WIDTH_PX)
    return head.render(CAMERA, euler_to_matrix(yaw, pitch, roll), translation, **articulation)


def test_portraits_load_as_rgb_and_have_licences():
    for name, portrait in PORTRAITS.items():
        image = load_portrait(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert "public domain" in portrait.licence
    with pytest.raises(KeyError, match="astronaut"):
        load_portrait("nobody")


def test_camera_projects_through_its_rays():
    pixels = np.array([[0.0, 0.0], [320.0, 240.0], [611.5, 13.25]])
    assert np.allclose(CAMERA.project(CAMERA.ray(pixels) * 750.0), pixels)
    assert np.allclose(CAMERA.matrix() @ np.array([0.0, 0.0, 1.0]), [320.0, 240.0, 1.0])


@pytest.mark.parametrize("name", sorted(PORTRAITS))
def test_rest_pose_reproduces_the_portrait(name):
    head = head_for(name)
    camera = head.portrait_camera
    translation = head.rest_translation(camera, head.portrait_face_center_px, head.portrait_face_width_px)
    assert np.allclose(translation, head.portrait_translation, atol=1e-6)
    render = head.render(camera, head.rest_rotation, translation)
    assert np.allclose(render.landmarks_px, head.portrait_mesh_px[:, :2], atol=1e-6)
    x0, y0, x1, y1 = render.box_xyxy_px.round().astype(int)
    error = np.abs(render.rgb[y0:y1, x0:x1].astype(float) - head.image_rgb[y0:y1, x0:x1]).mean()
    assert error < 2.0
    assert render.alpha[y0:y1, x0:x1].min() == 1.0
    assert render.alpha[0, 0] == 0.0  # the feathered border


def test_rest_translation_places_and_sizes_the_face(head):
    render = _render(head, *np.rad2deg(np.zeros(3)))
    render_rest = head.render(CAMERA, head.rest_rotation, head.rest_translation(CAMERA, (300.0, 200.0), 120.0))
    width = np.linalg.norm(render_rest.landmarks_px[454] - render_rest.landmarks_px[234])
    assert abs(width - 120.0) < 0.01
    assert render.alpha.dtype == np.float32 and 0.0 <= render.alpha.min() and render.alpha.max() <= 1.0
    assert render.rgb.shape == (480, 640, 3) and render.landmarks_cam.shape == (478, 3)


def test_face_detection_finds_rendered_heads_up_to_35_degrees(head):
    import mediapipe as mp

    poses = [(35, 0, 0), (-35, 0, 0), (0, 30, 0), (0, -30, 0), (0, 0, 35), (0, 0, -35), (25, -20, 20)]
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as detector:
        found = [bool(detector.process(_composite(_render(head, *pose))).detections) for pose in poses]
        found.append(bool(detector.process(_composite(_render(head, 10, 5, 0, jaw_open=1.0))).detections))
    assert all(found), found


def test_projected_landmarks_match_redetected_mesh(head):
    for pose in [(0, 0, 0), (15, 0, 0), (-15, 10, 0), (0, -10, 15)]:
        render = _render(head, *pose, jaw_open=0.3)
        mesh = detect_face_mesh(_composite(render))
        assert mesh is not None, pose
        redetected_px = mesh_normalised_to_px(mesh, CAMERA.width, CAMERA.height)[:, :2]
        error_px = np.linalg.norm(redetected_px - render.landmarks_px, axis=1).mean()
        assert error_px < 5.0, (pose, error_px)  # face 170 px wide


def test_jaw_opens_the_mouth_and_drops_the_chin(head):
    closed, open_ = _render(head), _render(head, jaw_open=1.0)
    face_height_px = closed.landmarks_px[CHIN, 1] - closed.landmarks_px[FOREHEAD, 1]
    chin_drop_px = open_.landmarks_px[CHIN, 1] - closed.landmarks_px[CHIN, 1]
    assert 0.15 * face_height_px < chin_drop_px < 0.35 * face_height_px
    assert np.allclose(open_.landmarks_px[FOREHEAD], closed.landmarks_px[FOREHEAD])
    lips = open_.landmarks_px[list(LIPS_INNER)]
    center = lips.mean(axis=0).round().astype(int)
    assert open_.rgb[center[1], center[0]].mean() < 80  # the dark cavity
    assert np.abs(closed.rgb.astype(int) - _render(head, jaw_open=0.0).rgb).max() == 0


def test_blink_closes_the_eyelids(head):
    open_eyes, closed_eyes = _render(head), _render(head, blink=1.0)
    for upper, lower in [(159, 145), (386, 374)]:
        assert np.linalg.norm(closed_eyes.landmarks_px[upper] - closed_eyes.landmarks_px[lower]) < 1.0
        assert np.linalg.norm(open_eyes.landmarks_px[upper] - open_eyes.landmarks_px[lower]) > 3.0


def test_a_head_outside_the_frame_renders_nothing(head):
    translation = head.rest_translation(CAMERA, (320.0, 250.0), FACE_WIDTH_PX) + [5000.0, 0.0, 0.0]
    render = head.render(CAMERA, np.eye(3), translation)
    assert render.alpha.max() == 0.0
