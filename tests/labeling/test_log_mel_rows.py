"""log_mel(rows=...) gives exactly the rows of the whole computation (the streaming dataset relies on it)."""

from __future__ import annotations

import numpy as np
import pytest

from emoforge.labeling.audio import log_mel


@pytest.mark.parametrize("n_samples", [1, 161, 450, 16000 * 2 + 37])
def test_row_ranges_equal_the_whole(n_samples):
    samples = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32)
    whole = log_mel(samples)
    last = len(whole)
    for first, stop in [(0, last), (0, 1), (1, 3), (last - 2, last), (last - 2, last + 4), (last + 1, last + 3)]:
        if first < 0 or first >= stop:
            continue
        expected = whole[np.minimum(np.arange(first, stop), last - 1)]  # past the end: the last row repeated
        np.testing.assert_allclose(log_mel(samples, rows=(first, stop)), expected, atol=1e-5)
