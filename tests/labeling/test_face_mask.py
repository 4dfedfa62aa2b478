import numpy as np

from emoforge.labeling.mask import face_region_masks, union_mask


def test_union_of_boxes_at_frame_and_latent_size():
    boxes = np.array([[10, 20, 30, 40], [25, 35, 50, 60], [np.nan] * 4], dtype=float)
    frame, latent = face_region_masks(boxes, height_px=64, width_px=80)
    assert frame.shape == (64, 80) and latent.shape == (8, 10)
    expected = np.zeros((64, 80), bool)
    expected[20:40, 10:30] = True
    expected[35:60, 25:50] = True
    assert np.array_equal(frame, expected)
    # latent cells overlapping a box: x 10..30 -> cells 1..3, y 20..40 -> cells 2..4, etc.
    expected_latent = np.zeros((8, 10), bool)
    expected_latent[2:5, 1:4] = True
    expected_latent[4:8, 3:7] = True
    assert np.array_equal(latent, expected_latent)


def test_boxes_outside_the_frame_are_clipped_and_empty_boxes_ignored():
    mask = union_mask(np.array([[-10, -10, 5.5, 4], [70, 50, 90, 90], [5, 5, 5, 9]]), 60, 80)
    assert mask[:4, :6].all() and mask[50:, 70:].all()
    assert mask.sum() == 4 * 6 + 10 * 10
