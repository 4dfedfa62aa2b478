import json
import math

import numpy as np
import pytest

from emoforge.errors import UserError
from emoforge.labeling.speed import (
    SpeedBuckets,
    bucket_index,
    constant_speed_embedding,
    fit_speed_buckets,
    speed_embedding,
    speed_vectors,
)


def _buckets(centres, radii, edges, m=2):
    return SpeedBuckets(tuple(centres), tuple(radii), tuple(edges), window_m=m)


def test_formula_matches_hand_computed_values():
    # c = (10, 30), r = (10, 10): s_i = tanh((w - c_i) / r_i * 3)
    buckets = _buckets([10.0, 30.0], [10.0, 10.0], [0.0, 20.0, 40.0])
    s = speed_vectors(np.array([10.0, 20.0, 0.0, 35.0]), buckets)
    # w=10: (0, tanh(-6)); w=20: (tanh(3), tanh(-3)); w=0: (tanh(-3), tanh(-9)); w=35: (tanh(7.5), tanh(1.5))
    expected = np.array(
        [
            [0.0, -0.9999877116507956],
            [0.9950547536867305, -0.9950547536867305],
            [-0.9950547536867305, -0.9999999695400409],
            [0.9999993881955461, 0.9051482536448664],
        ]
    )
    np.testing.assert_allclose(s, expected, atol=1e-9)


def test_formula_uses_each_buckets_own_radius():
    buckets = _buckets([1.0, 4.0], [0.5, 2.0], [0.0, 1.5, 6.0])
    s = speed_vectors(np.array([2.0]), buckets)[0]
    assert s[0] == pytest.approx(math.tanh((2.0 - 1.0) / 0.5 * 3))  # tanh(6)
    assert s[1] == pytest.approx(math.tanh((2.0 - 4.0) / 2.0 * 3))  # tanh(-3)


def test_quantile_fit_on_uniform_speeds():
    velocity = np.linspace(0.0, 40.0, 4001)
    buckets = fit_speed_buckets(velocity, d=4, window_m=2)
    np.testing.assert_allclose(buckets.edges_deg_per_s, [0, 10, 20, 30, 40], atol=1e-9)
    np.testing.assert_allclose(buckets.centres_deg_per_s, [5, 15, 25, 35], atol=1e-9)
    np.testing.assert_allclose(buckets.radii_deg_per_s, [5, 5, 5, 5], atol=1e-9)
    counts = np.bincount(bucket_index(velocity, buckets), minlength=4)
    assert counts.min() >= 999 and counts.max() <= 1002  # quantiles: equal shares


def test_fit_ignores_nan_and_spreads_tied_quantiles():
    velocity = np.array([0.0] * 50 + [np.nan] * 10 + [5.0] * 50)
    buckets = fit_speed_buckets(velocity, d=4)
    assert buckets.frames_fitted == 100
    assert np.all(np.diff(buckets.edges_deg_per_s) > 0)
    assert all(r > 0 for r in buckets.radii_deg_per_s)


def test_bucket_index_is_open_ended_and_marks_nan():
    buckets = _buckets([5.0, 15.0], [5.0, 5.0], [0.0, 10.0, 20.0])
    index = bucket_index(np.array([-1.0, 0.0, 9.99, 10.0, 25.0, np.nan]), buckets)
    assert index.tolist() == [0, 0, 0, 1, 1, -1]


def test_windowed_embedding_orders_neighbours_and_repeats_edges():
    speed = np.arange(5 * 2, dtype=float).reshape(5, 2)  # frame f has (2f, 2f+1)
    embedding = speed_embedding(speed, window_m=2)
    assert embedding.shape == (5, 10)
    # frame 2: s^0, s^1, s^2, s^3, s^4
    assert embedding[2].tolist() == list(range(10))
    # frame 0: s^0, s^0, s^0, s^1, s^2 (edge repeated)
    assert embedding[0].tolist() == [0, 1, 0, 1, 0, 1, 2, 3, 4, 5]
    assert speed_embedding(speed, window_m=0).tolist() == speed.tolist()


def test_buckets_round_trip_and_reject_other_versions(tmp_path):
    buckets = fit_speed_buckets(np.linspace(0, 30, 300), d=3, window_m=1)
    path = buckets.save(tmp_path / "speed_buckets.json")
    assert SpeedBuckets.load(path) == buckets
    data = json.loads(path.read_text())
    data["unit"] = "deg_per_frame"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="unit"):
        SpeedBuckets.load(path)


def test_constant_speed_embedding_for_inference():
    buckets = fit_speed_buckets(np.linspace(0, 30, 300), d=3, window_m=2)
    embedding = constant_speed_embedding(12.0, buckets, n_frames=12)
    assert embedding.shape == (12, 15)
    assert np.allclose(embedding, embedding[0])
    with pytest.raises(UserError):
        constant_speed_embedding(-1.0, buckets, 12)


def test_bad_bucket_requests():
    with pytest.raises(UserError):
        fit_speed_buckets(np.array([1.0, 2.0]), d=4)
    with pytest.raises(UserError):
        fit_speed_buckets(np.linspace(0, 1, 100), d=0)
    with pytest.raises(UserError):
        fit_speed_buckets(np.linspace(0, 1, 100), d=2, method="kmeans")
