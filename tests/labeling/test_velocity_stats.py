import numpy as np
import pytest

from emoforge.errors import UserError
from emoforge.labeling.stats import clip_velocity_stats, set_velocity_stats


def test_constant_speed_clips_give_table_2_values():
    clips = [np.full(50, 1.0), np.full(80, 2.0), np.full(20, 3.0)]
    stats = set_velocity_stats(clips)
    assert stats.mean_velocity == pytest.approx(2.0)
    assert stats.velocity_variance == pytest.approx(0.0)
    assert stats.variance_of_mean_velocities == pytest.approx(2.0 / 3.0)  # ddof 0
    assert set_velocity_stats(clips, ddof=1).variance_of_mean_velocities == pytest.approx(1.0)
    assert stats.clips == 3 and stats.frames == 150


def test_velocity_variance_is_the_mean_of_within_clip_variances():
    a = np.array([1.0, 3.0] * 10)  # mean 2, variance 1
    b = np.array([0.0, 4.0, np.nan] * 10)  # mean 2, variance 4 (NaN frames left out)
    stats = set_velocity_stats([a, b])
    assert clip_velocity_stats(b).frames == 20
    assert stats.velocity_variance == pytest.approx(2.5)
    assert stats.variance_of_mean_velocities == pytest.approx(0.0)


def test_empty_clips_are_an_error():
    with pytest.raises(UserError):
        clip_velocity_stats(np.array([np.nan, np.nan]))
    with pytest.raises(UserError):
        set_velocity_stats([])
