"""The hard-cut detector's thumbnail (two area-average steps) and its decisions."""

import numpy as np

from emoforge.labeling.shots import CutDetector


def test_thumbnail_in_two_steps_matches_one_and_cuts_are_found():
    import cv2
    import skimage.data

    first = cv2.resize(skimage.data.astronaut(), (1280, 720), interpolation=cv2.INTER_LINEAR)
    second = cv2.resize(skimage.data.coffee(), (1280, 720), interpolation=cv2.INTER_LINEAR)
    one_step = cv2.resize(first, (64, 36), interpolation=cv2.INTER_AREA).astype(int)
    two_steps = cv2.resize(cv2.resize(first, (640, 360), interpolation=cv2.INTER_AREA), (64, 36),
                           interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(one_step - two_steps).max() <= 1
    detector = CutDetector(min_shot_frames=2)
    shifted = np.roll(first, 3, axis=1)  # the same shot, the camera moved a little
    decisions = [detector.is_cut(frame) for frame in (first, shifted, first, second, second)]
    assert decisions == [False, False, False, True, False]
