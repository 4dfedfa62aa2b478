"""The scene splitter's per-frame features keep their values (they are computed faster now)."""

from __future__ import annotations

import numpy as np
import pytest

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


def _moving_scene(seed: int, tint, shift_px: float, shape=(90, 160)) -> np.ndarray:
    """A smooth random texture, tinted, panned ``shift_px`` to the right (sub-pixel)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(0, 1, (9, 16)).astype(np.float32), (shape[1] + 40, shape[0]), interpolation=cv2.INTER_CUBIC)
    shift = np.float32([[1, 0, -20 + shift_px], [0, 1, 0]])
    window = cv2.warpAffine(base, shift, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(window[..., None] * np.asarray(tint, np.float32) * 255, 0, 255)


def _dissolve(fps: float, blend_start_s: float, pan_px_per_s=(4.0, -5.0), brightening_per_s=0.0):
    """Scene A dissolves into scene B over 0.6 s while both pan (and A's light changes).

    Returns the transitions found, the span list and the indices of the blended frames."""
    from emoforge.curation.config import SceneConfig
    from emoforge.curation.scene_split import SceneSplitter

    times = np.arange(int(round((blend_start_s + 3.0) * fps))) / fps
    times = times[times >= blend_start_s - 2.0]  # from 2 s before the blend
    times_s = times - times[0]
    splitter = SceneSplitter(SceneConfig(), fps)
    weights = np.clip((times - blend_start_s) / 0.6, 0.0, 1.0)
    for t, weight in zip(times_s, weights):
        a = _moving_scene(1, (1.0, 0.55, 0.35), shift_px=pan_px_per_s[0] * t) * (1 + brightening_per_s * t)
        b = _moving_scene(2, (0.3, 0.5, 1.0), shift_px=pan_px_per_s[1] * t)
        splitter.push(float(t), np.clip((1 - weight) * a + weight * b, 0, 255).round().astype(np.uint8))
    spans, transitions = splitter.finish(float(times_s[-1]) + 1 / fps)
    blended = np.flatnonzero((weights > 0) & (weights < 1))
    found = [np.searchsorted(times_s, [t.start_s - 1e-9, t.end_s - 1e-9]) for t in transitions]
    return transitions, spans, blended, found


@pytest.mark.parametrize("fps, blend_start_s", [(24.0, 14.966), (25.0, 3.81), (29.97, 8.39), (30.0, 6.467)])
@pytest.mark.parametrize("brightening_per_s", [0.0, 0.1, -0.15])
def test_a_dissolve_is_measured_to_the_frame_while_the_scenes_move(fps, blend_start_s, brightening_per_s):
    """Slow pans and a change of light drift the blend weights: the blend's frames are still
    found, none left out and at most one clean frame taken on each side."""
    transitions, spans, blended, found = _dissolve(fps, blend_start_s, brightening_per_s=brightening_per_s)
    assert [t.kind for t in transitions] == ["dissolve"]
    ((first, end),), (dissolve,) = found, transitions
    assert blended[0] - 1 <= first <= blended[0] and blended[-1] + 1 <= end <= blended[-1] + 2, (first, end, blended)
    assert [(s.start_s, s.end_s) for s in spans] == [(0.0, dissolve.start_s), (dissolve.end_s, spans[-1].end_s)]


@pytest.mark.parametrize("fps", [24.0, 30.0])
def test_a_dissolve_during_fast_pans_is_covered_generously(fps):
    """Pans of a fifth of the frame per second bend the blend weights off a line: the
    measured blend then errs wide, never short."""
    transitions, _, blended, found = _dissolve(fps, 6.467, pan_px_per_s=(30.0, -30.0))
    ((first, end),), (dissolve,) = found, transitions
    assert dissolve.kind == "dissolve"
    assert blended[0] - 15 <= first <= blended[0] and blended[-1] + 1 <= end <= blended[-1] + 15, (first, end, blended)


def test_a_ramp_without_its_second_plateau_is_not_fitted():
    """When frame B is itself still blended the rise runs to the window's edge: no fit, so
    the caller widens the window instead of ending the blend at B."""
    from emoforge.curation.scene_split import _fit_ramp

    x = np.arange(100, 140, dtype=np.float64)
    noise = np.random.default_rng(3).normal(0, 0.004, len(x))
    whole = np.clip((x - 110.4) / 17.0, 0, 1) + 0.004 * (x - 100) + noise
    s, e, rms = _fit_ramp(x, whole, 119)
    assert abs(s - 110.4) <= 0.5 and abs(e - 127.4) <= 0.5 and rms < 0.01
    cut_short = (x < 125)
    assert _fit_ramp(x[cut_short], whole[cut_short] / whole[cut_short][-1], 119) is None


def test_a_dissolve_between_scenes_of_the_same_colours_is_found():
    """Scene B is scene A mirrored: the colour histograms never change, the blend is linear."""
    from emoforge.curation.config import SceneConfig
    from emoforge.curation.scene_split import SceneSplitter

    fps, blend_start_s = 30.0, 2.0
    times = np.arange(int(4.5 * fps)) / fps
    weights = np.clip((times - blend_start_s) / 0.6, 0.0, 1.0)
    splitter = SceneSplitter(SceneConfig(), fps)
    a = _moving_scene(4, (1.0, 0.8, 0.6), shift_px=0.0)
    b = a[:, ::-1]
    for t, weight in zip(times, weights):
        splitter.push(float(t), np.clip((1 - weight) * a + weight * b, 0, 255).round().astype(np.uint8))
    _, transitions = splitter.finish(float(times[-1]) + 1 / fps)
    blended = np.flatnonzero((weights > 0) & (weights < 1))
    assert [t.kind for t in transitions] == ["dissolve"]
    first, end = np.searchsorted(times, [transitions[0].start_s - 1e-9, transitions[0].end_s - 1e-9])
    assert first <= blended[0] and end >= blended[-1] + 1, (first, end, blended)
