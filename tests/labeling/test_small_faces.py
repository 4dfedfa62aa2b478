"""Faces the tracking mesh misses (small, or scenery the detector fires on) and shots holding two scenes."""

from __future__ import annotations

import numpy as np

from emoforge.labeling.faces import Detection
from emoforge.labeling.label import _drop_meshless_tracks, split_shots_where_faces_change


def test_crop_mesh_finds_a_small_face_inside_an_oversized_box():
    """A 48 px face in a 1280x720 frame: the frame-level mesh sees it at ~5 px; the crop mesh
    finds it and gives its tight box even when the detector's box is five times too big."""
    import cv2
    import skimage.data

    from emoforge.labeling.faces import CropMesher

    head = skimage.data.astronaut()[0:300, 100:350]  # head and shoulders, the face ~150 px wide
    small = cv2.resize(head, (83, 100), interpolation=cv2.INTER_AREA)  # the face ~50 px wide
    frame = np.full((720, 1280, 3), 120, np.uint8)
    frame[180:280, 340:423] = small
    mesher = CropMesher()
    try:
        mesh = mesher.mesh_for(frame, np.array([270.0, 120.0, 500.0, 350.0]))  # ~5x the face
        elsewhere = mesher.mesh_for(frame, np.array([800.0, 300.0, 1000.0, 500.0]))  # empty backdrop
    finally:
        mesher.close()
    assert mesh is not None and mesh.shape == (478, 3)
    box = np.r_[mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)]
    assert 340 <= box[0] and box[2] <= 423 and 180 <= box[1] and box[3] <= 280  # on the pasted head
    assert 30 <= box[2] - box[0] <= 70  # the face's own size, not the box's 230 px
    assert elsewhere is None


def _det(track, mesh):
    return Detection(np.zeros(4), 0.9, 0, track_id=track, mesh_px=np.zeros((478, 3), np.float32) if mesh else None)


def test_tracks_mostly_without_a_mesh_are_dropped():
    rows = [(f, _det(0, True)) for f in range(10)]  # a face
    rows += [(f, _det(1, f % 4 == 0)) for f in range(10)]  # scenery: 3 of 10 meshed (spurious)
    rows += [(f, _det(2, f % 2 == 0)) for f in range(10)]  # a face the mesh loses half the time
    kept = _drop_meshless_tracks(rows, 0.5)
    assert {d.track_id for _, d in kept} == {0, 2}
    assert _drop_meshless_tracks(rows, 0.0) == rows


def test_shot_is_split_where_its_faces_change():
    """Dissolves the cut detector missed. Shot 0: face A in frames 0-39, a 3-frame blip, face B in
    50-99. Shot 1 (100-199): face C throughout, the tracker carrying it on into a two-face scene
    from 150 where face D joins."""
    shot_id = np.array([0] * 100 + [1] * 100, dtype=np.int32)
    det_frame = np.r_[np.arange(0, 40), [42, 43, 44], np.arange(50, 100), np.arange(100, 200), np.arange(150, 200)]
    det_track = np.r_[[0] * 40, [5] * 3, [1] * 50, [2] * 100, [3] * 50]
    shots, tracks = split_shots_where_faces_change(shot_id, det_frame, det_track)
    assert shots[0] == 0 and shots[39] == 0 and shots[40] == 1 and shots[99] == 1  # the blip goes with B
    assert (shots[100:150] == 2).all() and (shots[150:] == 3).all()
    c_before, c_after = tracks[(det_frame == 149) & (det_track == 2)], tracks[(det_frame == 150) & (det_track == 2)]
    assert c_before == 2 and c_after not in (0, 1, 2, 3, 5)  # face C's track is cut at the new shot
    assert (tracks[det_track == 3] == 3).all()
    for shot in np.unique(shots):  # no track spans two shots
        inside = np.isin(det_frame, np.flatnonzero(shots == shot))
        assert not set(tracks[inside]) & set(tracks[~inside])
    steady = np.arange(100)  # one face through the whole shot, another for 20 frames: no split
    steady_frames, steady_ids = np.r_[steady, np.arange(30, 50)], np.r_[[0] * 100, [1] * 20]
    steady_shots, steady_tracks = split_shots_where_faces_change(shot_id[:100], steady_frames, steady_ids)
    assert (steady_shots == 0).all() and (steady_tracks == steady_ids).all()


def test_square_tiles_cover_the_frame_with_overlap():
    from emoforge.labeling.faces import square_tiles

    assert square_tiles(1280, 720) == [(0, 0, 720, 720), (560, 0, 1280, 720)]
    assert square_tiles(720, 1280) == [(0, 0, 720, 720), (0, 560, 720, 1280)]
    assert square_tiles(480, 480) == [(0, 0, 480, 480)]
    wide = square_tiles(1920, 480)  # 4:1: five tiles, neighbours sharing at least 10 %
    assert len(wide) == 5 and wide[0][0] == 0 and wide[-1][2] == 1920
    assert all(b[0] <= a[2] - 48 for a, b in zip(wide, wide[1:]))


def test_detector_finds_a_small_face_by_tiles_then_follows_it():
    """A ~40 px face in a 1280x720 frame: the whole-frame models miss it; the full-range model on
    square tiles (asked for, on a frame without faces) finds it; given its box from the previous
    frame, the short-range model on a crop around it finds it on any frame."""
    import cv2
    import skimage.data

    from emoforge.labeling.faces import FaceDetector

    head = skimage.data.astronaut()[0:300, 100:350]
    small = cv2.resize(head, (83, 100), interpolation=cv2.INTER_AREA)  # the face ~40 px wide
    frame = np.full((720, 1280, 3), 120, np.uint8)
    frame[400:500, 900:983] = small
    face_centre = np.array([938.0, 437.0])
    detector = FaceDetector()
    try:
        off_schedule = detector.detect(frame, frame_index=3)
        tiled = detector.detect(frame, frame_index=3, search_tiles=True)
        face_box = np.array([918.0, 414.0, 958.0, 460.0])  # the mesh box the labeler passes on
        followed = detector.detect(frame, frame_index=3, follow_boxes=[face_box])
    finally:
        detector.close()

    def on_face(found):
        return [d for d in found if d.box_xyxy_px[0] <= face_centre[0] <= d.box_xyxy_px[2]
                and d.box_xyxy_px[1] <= face_centre[1] <= d.box_xyxy_px[3]]

    assert not on_face(off_schedule)
    assert len(on_face(tiled)) == 1 and len(on_face(followed)) == 1
    assert on_face(tiled)[0].tiled and not on_face(followed)[0].tiled
    for det in on_face(tiled) + on_face(followed):
        width = det.box_xyxy_px[2] - det.box_xyxy_px[0]
        assert 25 <= width <= 90  # the face's size, in frame pixels


def test_one_face_found_twice_is_counted_once():
    """A tight box (crop) and a loose one four times the face's size (whole frame), on one face:
    the loose one without a mesh is dropped; of two meshed detections of one face the better
    scored stays; a face elsewhere stays."""
    from emoforge.labeling.faces import drop_duplicate_faces

    def meshed(x0, y0, size, score):
        mesh = np.zeros((478, 3), np.float32)
        mesh[:, 0] = np.linspace(x0, x0 + size, 478)
        mesh[:, 1] = np.linspace(y0, y0 + size, 478)[::-1]
        return Detection(np.array([x0, y0, x0 + size, y0 + size], float), score, 0, mesh_px=mesh)

    tight = meshed(353, 201, 50, 0.95)
    loose = Detection(np.array([288.0, 235.0, 489.0, 436.0]), 0.6, 0)  # covers 40 % of the face
    twin = meshed(355, 203, 50, 0.7)
    other = meshed(900, 200, 50, 0.9)
    elsewhere = Detection(np.array([600.0, 500.0, 700.0, 600.0]), 0.8, 1)
    kept = drop_duplicate_faces([loose, tight, twin, other, elsewhere])
    assert kept == [tight, other, elsewhere]
    # the loose box drifted below the face (7 % of it covered); its track last meshed this face
    drifted = Detection(np.array([300.0, 253.0, 482.0, 436.0]), 0.56, 0, track_id=8)
    assert drop_duplicate_faces([tight, drifted]) == [tight, drifted]
    last = {8: np.array([354.0, 203.0, 402.0, 255.0])}
    assert drop_duplicate_faces([tight, drifted], last) == [tight]


def test_tracks_only_the_tiled_search_found_are_dropped():
    from emoforge.labeling.label import _drop_unconfirmed_tracks

    rows = [(0, Detection(np.zeros(4), 0.6, 1, track_id=0, tiled=True)),  # a coin, once
            (10, Detection(np.zeros(4), 0.7, 1, track_id=1, tiled=True)),  # a small face ...
            (11, Detection(np.zeros(4), 0.9, 0, track_id=1))]  # ... followed on the next frame
    assert [d.track_id for _, d in _drop_unconfirmed_tracks(rows)] == [1, 1]
