"""Shared fixtures: short generated footage (640x360, so faces pass the default size filter)."""

from fractions import Fraction
from pathlib import Path

import pytest

from emoforge.curation.footage.encode import VideoFormat
from emoforge.curation.footage.generate import VideoJob, render_video

SMALL = VideoFormat("test-360p", "mp4", "libx264", "aac", 640, 360, Fraction(25), 16000, 1)


@pytest.fixture(scope="session")
def footage_dir(tmp_path_factory) -> Path:
    """Two 16 s videos; their distractor cycles start at different kinds, one has a dissolve."""
    root = tmp_path_factory.mktemp("curation-footage")
    for index in (0, 1):
        render_video(VideoJob(root, index, 11, 16.0, SMALL))
    return root
