"""I420 frames from the streaming dataset -> RGB on the training device (torch).

``ShardDataset(output_dtype="yuv420")`` yields each frame as its decoder's planes,
``(3H/2, W)`` uint8: ``H`` rows of luma, then U and V at ``(H/2, W/2)`` each, packed
row-major (OpenCV's I420 layout), BT.601 limited range (what curation's H.264 clips
hold). Half the bytes of RGB cross the worker -> trainer boundary and the worker skips
the colour conversion; the device does it here, as OpenCV's ``COLOR_YUV2RGB_I420``
does (nearest-neighbour chroma, the same coefficients), in float.
"""

from __future__ import annotations

import torch

# BT.601 limited range (Y 16-235, Cb/Cr 16-240): OpenCV's fixed-point constants / 2**20.
_Y = 1220542 / 2**20  # 255 / 219
_V_TO_R = 1673527 / 2**20
_U_TO_G = -409993 / 2**20
_V_TO_G = -852492 / 2**20
_U_TO_B = 2116026 / 2**20


def i420_to_unit_rgb(i420: torch.Tensor) -> torch.Tensor:
    """``(..., 3H/2, W)`` uint8 I420 -> ``(..., 3, H, W)`` float32 RGB in [-1, 1] (x / 127.5 - 1 of 0..255 RGB)."""
    *lead, rows, width = i420.shape
    height = rows * 2 // 3
    if rows != height * 3 // 2 or height % 2 or width % 2:
        raise ValueError(f"not I420 frames of an even size: {tuple(i420.shape)}")
    pixels = i420.float()
    luma = (pixels[..., :height, :] - 16.0).clamp_(min=0.0) * _Y  # (..., H, W); OpenCV clamps Y - 16 at 0 too
    chroma = pixels[..., height:, :].reshape(*lead, 2, height // 2, width // 2) - 128.0  # (..., 2, H/2, W/2): U, V
    chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (..., 2, H, W) nearest neighbour
    u, v = chroma.unbind(dim=-3)
    rgb = torch.stack([luma + _V_TO_R * v, luma + _U_TO_G * u + _V_TO_G * v, luma + _U_TO_B * u], dim=-3)  # (..., 3, H, W)
    return rgb.clamp_(0.0, 255.0).div_(127.5).sub_(1.0)
