"""The frames the labeler works on: the area-downscaled copy, decoding threads, OpenCV's threads."""

from __future__ import annotations

import numpy as np
import pytest

from emoforge.labeling.video import downscaled


def test_downscaled_copy_is_whole_blocks_averaged():
    rgb = np.random.default_rng(0).integers(0, 256, (721, 1283, 3), dtype=np.uint8)
    small, factor = downscaled(rgb, 640)
    assert factor == 2 and small.shape == (360, 641, 3)  # the odd last row and column are left out
    blocks = rgb[:720, :1282].reshape(360, 2, 641, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - blocks).max() <= 0.5 + 1e-9  # rounded block means
    assert downscaled(np.zeros((1080, 1920, 3), np.uint8), 640)[0].shape == (360, 640, 3)
    assert downscaled(np.zeros((1280, 720, 3), np.uint8), 640)[1] == 2  # portrait: the long side counts
    view = rgb[:540, :960]
    same, one = downscaled(view, 640)  # 960 // 640 = 1: the frame itself, no copy
    assert one == 1 and same is view
    assert downscaled(rgb, 0)[1] == 1


def test_opencv_runs_single_threaded_while_labelling_and_is_restored():
    cv2 = pytest.importorskip("cv2")
    from emoforge.labeling.label import _opencv_threads

    before = cv2.getNumThreads()
    with _opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before
    with pytest.raises(RuntimeError):
        with _opencv_threads(1):
            raise RuntimeError("a failing stage")
    assert cv2.getNumThreads() == before


@pytest.mark.slow
def test_frames_decode_alike_with_one_thread_or_several(talking_video):
    from emoforge.labeling.video import iter_frames

    one = [f.rgb for f in iter_frames(talking_video)]
    several = [f.rgb for f in iter_frames(talking_video, threads=0)]
    assert len(one) == len(several) == 50
    assert all(np.array_equal(a, b) for a, b in zip(one, several))
