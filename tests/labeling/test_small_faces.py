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
