"""Frames the detector skips: the tracking mesh carries the last frame's boxes, and a face
that shows up mid-shot is still found within ``detect_every`` frames."""

from __future__ import annotations

import numpy as np
import pytest

from emoforge.labeling.faces import CARRIED, SHORT_RANGE, Detection, carry_detections

_MESH_BOX = np.array([100.0, 50.0, 200.0, 170.0])  # the face (mesh) box in the last frame


def _mesh(x0, y0, x1, y1):
    """A stand-in mesh: 478 points spanning the box."""
    points = np.zeros((478, 3), np.float32)
    points[:, 0] = np.linspace(x0, x1, 478)
    points[:, 1] = np.linspace(y0, y1, 478)[::-1]
    return points


def test_a_box_keeps_its_place_and_size_relative_to_the_face_it_follows():
    last = Detection(np.array([90.0, 30.0, 210.0, 170.0]), 0.87, SHORT_RANGE, track_id=4)
    moved = _mesh(110.0, 44.0, 230.0, 188.0)  # moved by (10, -6), 1.2 times the size
    carried = carry_detections([last], [moved], {4: _MESH_BOX}, frame_wh=(640, 360))
    assert carried is not None and len(carried) == 1
    det = carried[0]
    # the box sat 0.1 face widths left of the face and 1/6 of its height above it, 1.2 x 7/6 its size
    np.testing.assert_allclose(det.box_xyxy_px, [98.0, 20.0, 242.0, 188.0])
    assert det.score == pytest.approx(0.87) and det.model == CARRIED and det.mesh_px is moved
    assert det.track_id == -1  # the tracker gives it its track


def test_boxes_are_clipped_to_the_frame():
    last = Detection(np.array([530.0, 30.0, 640.0, 170.0]), 0.9, SHORT_RANGE, track_id=1)
    face = np.array([540.0, 50.0, 640.0, 170.0])
    carried = carry_detections([last], [_mesh(560.0, 50.0, 660.0, 170.0)], {1: face}, frame_wh=(640, 360))
    np.testing.assert_allclose(carried[0].box_xyxy_px, [550.0, 30.0, 640.0, 170.0])  # 660 clipped


def test_two_faces_pair_by_overlap_not_by_order():
    left, right = np.array([0.0, 0.0, 100.0, 100.0]), np.array([300.0, 0.0, 400.0, 100.0])
    previous = [Detection(left.copy(), 0.9, SHORT_RANGE, track_id=1),
                Detection(right.copy(), 0.6, SHORT_RANGE, track_id=2)]
    meshes = [_mesh(305.0, 0.0, 405.0, 100.0), _mesh(5.0, 0.0, 105.0, 100.0)]  # right first
    carried = carry_detections(previous, meshes, {1: left, 2: right}, frame_wh=(640, 360))
    assert [d.score for d in carried] == [0.9, 0.6]
    np.testing.assert_allclose(carried[0].box_xyxy_px, [5.0, 0.0, 105.0, 100.0])
    assert carried[1].mesh_px is meshes[0]


@pytest.mark.parametrize("meshes", [
    [],  # the face was lost
    [_mesh(100.0, 50.0, 200.0, 170.0), _mesh(400.0, 50.0, 500.0, 170.0)],  # one more face
    [_mesh(400.0, 50.0, 500.0, 170.0)],  # a face, but not where the last one was
])
def test_no_carry_when_the_faces_do_not_pair_one_to_one(meshes):
    last = Detection(np.array([90.0, 30.0, 210.0, 170.0]), 0.9, SHORT_RANGE, track_id=0)
    assert carry_detections([last], meshes, {0: _MESH_BOX}, frame_wh=(640, 360)) is None
    assert carry_detections([], meshes, {}, frame_wh=(640, 360)) is None


def test_a_face_that_appears_mid_shot_is_found_within_detect_every_frames(tmp_path):
    """One face, then from frame 20 a second beside it (no cut): the detector runs on every
    third frame while the mesh holds the faces, so the second face is counted from frame 20,
    21 or 22 on; frames before carry boxes; both faces keep one track each."""
    pytest.importorskip("mediapipe")
    import cv2

    from emoforge.labeling.label import LabelConfig, label_video
    from labeling_media import portrait_frames, write_video

    face = portrait_frames(1, size=(240, 240))[0]
    frames = np.full((40, 240, 560, 3), 90, np.uint8)
    frames[:, :, 20:260] = face
    frames[20:, :, 300:540] = cv2.flip(face, 1)
    path = tmp_path / "second_face.mp4"
    write_video(path, frames)
    labels = label_video(path, tmp_path / "labels", LabelConfig(detect_every=3))
    arrays = labels.arrays
    counts = arrays["face_count"]
    assert (counts[:20] == 1).all() and (counts[22:] == 2).all()
    assert (arrays["det_model"] == CARRIED).sum() >= 10  # the detector did skip frames
    assert len(np.unique(arrays["det_track_id"])) == 2
    assert np.isfinite(arrays["det_score"]).all()
