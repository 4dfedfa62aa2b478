"""Fixtures for the labeling tests; the media builders live in labeling_media.py."""

from __future__ import annotations

import pytest

from labeling_media import portrait_frames, tone_bursts, write_video  # noqa: F401 (used by fixtures)


@pytest.fixture(scope="session")
def talking_video(tmp_path_factory):
    """2 s, 320x240, 25 fps, the astronaut rolling 1°/frame, audio with one 1 s burst."""
    path = tmp_path_factory.mktemp("media") / "astronaut.mp4"
    write_video(path, portrait_frames(50, roll_deg_per_frame=1.0), audio=tone_bursts(2.0, on_s=((0.5, 1.5),)))
    return path
