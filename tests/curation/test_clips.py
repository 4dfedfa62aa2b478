"""Clip cropping: the crop is taken from the decoded frame's YUV planes (no RGB round trip)
and shows what the RGB crop of the same frame shows; a crop that shrinks by more than 2 is
area-averaged (no aliasing)."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from emoforge.curation.clips import crop_yuv420


def _frame(width=640, height=360):
    """Smooth colour blobs (16 px), so a crop shifted by a pixel, or chroma by a few, shows."""
    rng = np.random.default_rng(0)
    blobs = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
    rgb = cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


@pytest.mark.parametrize("x0, y0, side", [(101.3, 37.7, 250.0), (0.0, 0.0, 200.0), (250.5, 10.25, 100.0), (340.0, 60.0, 240.0)])
def test_yuv_crop_matches_the_rgb_crop(x0, y0, side):
    frame, size = _frame(), 128
    scale = size / side
    affine = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    interpolation = cv2.INTER_LINEAR
    got = crop_yuv420(frame, affine, size)
    assert (got.width, got.height, got.format.name) == (size, size, "yuv420p")
    # The former path: the whole frame to RGB, crop, and the encoder's conversion back to yuv420p.
    rgb_crop = cv2.warpAffine(frame.to_ndarray(format="rgb24"), affine, (size, size), flags=interpolation,
                              borderMode=cv2.BORDER_REPLICATE)
    want = av.VideoFrame.from_ndarray(rgb_crop, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    got_planes = got.to_ndarray().astype(int)
    luma_error = np.abs(got_planes[:size] - want[:size]).mean()
    chroma_error = np.abs(got_planes[size:] - want[size:]).mean()
    # Luma: two colour conversions' rounding. Chroma is resampled in another order (at half
    # resolution, not from upsampled RGB), which differs by up to ~3 on these saturated blobs
    # when shrinking; chroma moved by its translation not halved gives ~39, its siting
    # mirrored ~4.3-5.3.
    assert luma_error < 1.5 and chroma_error < 3.5, (luma_error, chroma_error)


def test_a_crop_that_shrinks_by_more_than_two_averages_the_pixels_it_covers():
    frame, size, factor, (x0, y0) = _frame(1280, 720), 128, 3, (300, 120)
    scale = 1 / factor  # a 384 px face region to 128 px
    affine = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    got = crop_yuv420(frame, affine, size).to_ndarray().astype(int)
    luma = frame.to_ndarray()[:720]
    # crop pixel (i, j) sits on source pixel (x0 + 3 i, y0 + 3 j) (pixel centres): the mean of the 3 x 3 block around it
    blocks = cv2.resize(luma[y0 - 1 : y0 - 1 + size * factor, x0 - 1 : x0 - 1 + size * factor], (size, size), interpolation=cv2.INTER_AREA)
    assert np.abs(got[:size] - blocks).max() <= 1


def test_fine_detail_does_not_alias_when_shrinking():
    stripes = np.zeros((720, 1280, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel columns, shrunk 3.3x: grey with a faint ripple, not moiré
    frame = av.VideoFrame.from_ndarray(stripes, format="rgb24").reformat(format="yuv420p")
    scale = 128 / 420
    affine = np.float32([[scale, 0, -200.5 * scale], [0, scale, -100.0 * scale]])
    luma = crop_yuv420(frame, affine, 128).to_ndarray()[:128].astype(float)
    plain = cv2.warpAffine(frame.to_ndarray()[:720], affine, (128, 128), flags=cv2.INTER_LINEAR)  # bilinear alone
    # 3 x 3 blocks leave a third of the stripes' swing at most (std 63 -> ~21); the mean is kept
    assert luma.std() < 0.4 * plain.std() and abs(luma.mean() - frame.to_ndarray()[:720].mean()) < 6, (luma.std(), plain.std())
