"""The trainer reads every picture layout the dataset can send (docs/format.md) as the same RGB."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from emoforge.errors import UserError
from emoforge.shards.pixels import i420_to_unit_rgb
from emoforge.training.objective import pixels
from emoforge.training.run_config import DataConfig


def test_i420_conversion_is_opencvs_in_float():
    rng = np.random.default_rng(0)
    i420 = rng.integers(0, 256, (3, 48, 32), dtype=np.uint8)  # three 32x32 frames, any values (clamping included)
    ours = (i420_to_unit_rgb(torch.from_numpy(i420)) + 1) * 127.5  # (3, 3, 32, 32)
    opencv = np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in i420]).transpose(0, 3, 1, 2)
    assert float((ours - torch.from_numpy(opencv).float()).abs().max()) <= 0.5 + 1e-4  # OpenCV rounds to integers
    with pytest.raises(ValueError, match="I420"):
        i420_to_unit_rgb(torch.zeros(3, 47, 32, dtype=torch.uint8))


def test_pixels_reads_float_uint8_and_i420_batches_alike():
    rng = np.random.default_rng(1)
    i420 = torch.from_numpy(rng.integers(16, 236, (2, 5, 24, 16), dtype=np.uint8))  # (b, f, 3H/2, W), H = W = 16
    rgb_uint8 = torch.from_numpy(np.stack([np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in clip])
                                           for clip in i420.numpy()])).permute(0, 4, 1, 2, 3)  # (b, 3, f, H, W)
    device = torch.device("cpu")
    video = pixels(i420, device, video=True)
    assert video.shape == (2, 3, 5, 16, 16) and video.dtype == torch.float32
    torch.testing.assert_close(video, pixels(rgb_uint8, device, video=True), rtol=0, atol=0.5 / 127.5 + 1e-6)
    torch.testing.assert_close(pixels(rgb_uint8.float() / 127.5 - 1, device, video=True), rgb_uint8.float() / 127.5 - 1)
    picture = pixels(i420[:, 0], device, video=False)  # (b, 3H/2, W) -> (b, 3, H, W)
    torch.testing.assert_close(picture, video[:, :, 0])


def test_data_pixels_setting_is_checked():
    assert DataConfig().pixels == "yuv420"
    with pytest.raises(UserError, match="data.pixels"):
        DataConfig(pixels="rgb")


def test_run_configs_saved_before_data_pixels_still_load():
    from emoforge.training.run_config import RunConfig

    saved = RunConfig().to_dict()
    del saved["data"]["pixels"]
    for output_uint8, pixels in ((True, "uint8"), (False, "float32")):
        saved["data"]["output_uint8"] = output_uint8
        assert RunConfig.from_dict(saved).data.pixels == pixels  # the run goes on as it began
