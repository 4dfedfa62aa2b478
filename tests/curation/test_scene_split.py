"""The scene splitter's per-frame features keep their values (they are computed faster now)."""

from __future__ import annotations

import numpy as np

from emoforge.curation.scene_split import _colour_histogram


def test_colour_histogram_counts_each_channel_in_16_bins():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 15, 16], [255, 240, 239], [128, 127, 0]]  # bin edges
    quantised = rgb.reshape(-1, 3) // 16
    expected = np.concatenate([np.bincount(quantised[:, c], minlength=16) for c in range(3)]) / (3.0 * len(quantised))
    got = _colour_histogram(rgb)
    assert got.shape == (48,) and got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    assert abs(got.sum() - 1.0) < 1e-12
