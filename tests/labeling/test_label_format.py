import json

import numpy as np
import pytest

from emoforge.errors import UserError
from emoforge.labeling.labels import (
    LABELS_VERSION,
    VideoLabels,
    clip_face_masks,
    find_labels,
    read_labels,
    video_id_for,
    write_labels,
)


def _labels():
    meta = {"video_id": "clip-0123456789", "status": "ok", "reason": None, "video": {"width": 64, "height": 48}}
    boxes = np.full((4, 4), np.nan, dtype=np.float32)
    boxes[1] = [8, 8, 24, 24]
    boxes[2] = [16, 16, 40, 32]
    arrays = {"box_xyxy_px": boxes, "velocity_deg_per_s": np.arange(4, dtype=np.float32)}
    return VideoLabels(meta, arrays, {"logmel": np.zeros((10, 80), np.float32)})


def test_round_trip_and_json_written_last(tmp_path):
    json_path = write_labels(tmp_path, _labels())
    assert json_path.name == "clip-0123456789.labels.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip-0123456789.audio.npz",
        "clip-0123456789.labels.json",
        "clip-0123456789.labels.npz",
    ]  # no partial file left behind
    back = read_labels(json_path, audio=True)
    assert back.meta["version"] == LABELS_VERSION and back.ok
    np.testing.assert_array_equal(back.arrays["box_xyxy_px"], _labels().arrays["box_xyxy_px"])
    assert back.audio["logmel"].shape == (10, 80)
    assert find_labels(tmp_path) == [json_path]
    frame_mask, latent_mask = clip_face_masks(back, 0, 4)
    assert frame_mask.shape == (48, 64) and latent_mask.shape == (6, 8)
    assert frame_mask[8:32, 8:40].sum() == 16 * 16 + 24 * 16 - 8 * 8


def test_other_versions_and_garbage_are_clear_errors(tmp_path):
    json_path = write_labels(tmp_path, _labels())
    meta = json.loads(json_path.read_text())
    meta["version"] = LABELS_VERSION + 1
    json_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="version"):
        read_labels(json_path)
    json_path.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        read_labels(json_path)


def test_nan_in_metadata_is_refused(tmp_path):
    labels = _labels()
    labels.meta["summary"] = {"mean": float("nan")}
    with pytest.raises(ValueError):
        write_labels(tmp_path, labels)
    assert not list(tmp_path.glob("*.labels.json"))


def test_video_ids_are_stable_and_safe():
    assert video_id_for("/a/b/My Clip (1).mp4", "ab" * 32) == "My_Clip__1_-ababababab"
