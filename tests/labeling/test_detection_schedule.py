"""What the face models are run on, and when: the downscaled copy for whole-frame detection,
the full-range model's schedule, the mesh graph's size, the whole-frame mesh's retries, and
reading MediaPipe's landmarks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from emoforge.labeling.faces import FULL_RANGE, SHORT_RANGE, MeshSchedule


class _RecordingModel:
    """Stands in for a MediaPipe detector: records ``(name, frame, image height and width)`` per
    call (the frame from ``state``) and finds a face, as a relative box, in ``face_frames``."""

    def __init__(self, calls: list, name: str, state: dict, face_frames=()):
        self.calls, self.name, self.state, self.face_frames = calls, name, state, set(face_frames)

    def run(self, image):
        self.calls.append((self.name, self.state["frame"], image.shape[:2]))
        if self.state["frame"] not in self.face_frames:
            return []
        box = SimpleNamespace(xmin=0.25, ymin=0.25, width=0.25, height=0.5)
        return [SimpleNamespace(location_data=SimpleNamespace(relative_bounding_box=box), score=[0.9])]

    def close(self):
        pass


def _detector_with(short_faces=(), full_faces=(), full_range_every=10):
    from emoforge.labeling.faces import FaceDetector

    pytest.importorskip("mediapipe")
    detector = FaceDetector(full_range_every=full_range_every)
    detector.close()  # the real models; recording stand-ins take their place
    calls: list = []
    state = {"frame": 0}
    detector._short = _RecordingModel(calls, "short", state, short_faces)
    detector._full = _RecordingModel(calls, "full", state, full_faces)
    return detector, calls, state


def test_full_range_runs_on_schedule_and_after_a_face_not_through_empty_stretches():
    detector, calls, state = _detector_with(short_faces={3})  # the short-range model sees a face in frame 3 only
    frame = np.zeros((72, 128, 3), np.uint8)
    for index in range(1, 25):
        state["frame"] = index
        detector.detect(frame, index, search_tiles=index == 15)
    full_frames = sorted({f for name, f, _ in calls if name == "full"})
    # 1: the detector starts as if the frame before showed a face; 4: the frame after the face;
    # 10, 20: the schedule; 15: the tiled search's frame. Not 2, 5-9, 11-14, ...
    assert full_frames == [1, 4, 10, 15, 20]
    assert sorted({f for name, f, _ in calls if name == "short"}) == list(range(1, 25))


def test_whole_frame_passes_see_the_downscaled_copy_and_boxes_come_back_in_frame_pixels():
    from emoforge.labeling.video import downscaled

    detector, calls, state = _detector_with(short_faces={0}, full_faces={0})
    frame = np.zeros((720, 1280, 3), np.uint8)
    found = detector.detect(frame, 0, scaled=downscaled(frame, 640))
    assert [shape for _, _, shape in calls] == [(360, 640), (360, 640)]  # short, then full (frame 0 is scheduled)
    assert len(found) == 1 and found[0].model in (SHORT_RANGE, FULL_RANGE)
    np.testing.assert_allclose(found[0].box_xyxy_px, [320, 180, 640, 540])
    calls.clear()
    state["frame"] = 1
    tiles = detector.detect(frame, 1, search_tiles=True, scaled=downscaled(frame, 640))
    assert not tiles and [shape for _, _, shape in calls][-2:] == [(720, 720), (720, 720)]  # tiles: full resolution


def test_mesh_schedule_retries_after_a_miss():
    schedule = MeshSchedule(retry_every=3)
    runs = []
    for frame in range(10):
        new_face = frame == 5
        if schedule.should_run(new_face):
            runs.append(frame)
            schedule.ran(found_any=frame >= 7)
        else:
            schedule.skipped()
    # misses at 0, retried at 3; a new face at 5 (missed), then every 3rd: 8 (found) and on every frame after
    assert runs == [0, 3, 5, 8, 9]
    schedule.reset()
    assert schedule.should_run(False)
    assert all(MeshSchedule(retry_every=1).should_run(False) for _ in range(3))


@pytest.mark.slow
def test_face_mesher_grows_its_graph_to_the_faces_expected_until_reset():
    from emoforge.labeling.faces import FaceMesher

    mesher = FaceMesher(max_faces=2)
    blank = np.zeros((64, 64, 3), np.uint8)
    try:
        assert mesher.process(blank, 1) == [] and mesher.graph_faces == 1
        mesher.process(blank, 3)
        assert mesher.graph_faces == 2  # capped at max_faces
        mesher.process(blank, 1)
        assert mesher.graph_faces == 2  # a shot continues on the larger graph
        mesher.reset()
        mesher.process(blank, 1)
        assert mesher.graph_faces == 1
        mesher.reset()
        mesher.process(blank)
        assert mesher.graph_faces == 2  # not told: as many as it may mesh
    finally:
        mesher.close()


def test_landmarks_are_read_from_the_serialised_message_and_field_by_field_alike():
    pytest.importorskip("mediapipe")
    from mediapipe.framework.formats import landmark_pb2

    from emoforge.labeling.faces import _landmarks

    values = np.random.default_rng(0).normal(size=(478, 3)).astype(np.float32)
    values[5] = 0.0  # zeros are written on the wire too (optional fields that are set)
    face = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in values:
        face.landmark.add(x=x, y=y, z=z)
    fast = _landmarks(face, np.float64)
    assert fast.dtype == np.float64
    np.testing.assert_array_equal(fast, values.astype(np.float64))
    face.landmark[7].visibility = 0.5  # another field: the bytes are no longer regular
    face.landmark[10].ClearField("z")  # a missing field: every later landmark shifts on the wire
    expected = values.copy()
    expected[10, 2] = 0.0
    np.testing.assert_array_equal(_landmarks(face, np.float32), expected)


def test_graphs_run_without_the_solution_wrapper_give_its_answers_and_leave_the_frame_alone():
    """faces._Graph feeds the solution's own graph by reference: the same detections as the
    solution's process(), and the caller's frame stays writeable and unchanged."""
    mp = pytest.importorskip("mediapipe")
    from labeling_media import portrait_frames

    from emoforge.labeling.faces import _Graph

    frame = portrait_frames(1)[0]
    before = frame.copy()
    with mp.solutions.face_detection.FaceDetection(model_selection=0) as reference:
        expected = reference.process(frame).detections
    graph = _Graph(mp.solutions.face_detection.FaceDetection(model_selection=0), "detections")
    try:
        found = graph.run(frame)
        assert graph.run(np.zeros((64, 64, 3), np.uint8)) == []
    finally:
        graph.close()
    assert len(found) == len(expected) == 1
    assert found[0].location_data.relative_bounding_box == expected[0].location_data.relative_bounding_box
    assert frame.flags.writeable and np.array_equal(frame, before)
