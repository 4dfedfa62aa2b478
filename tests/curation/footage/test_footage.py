"""Generated footage end to end: truth schema, determinism, resume, and MediaPipe's view."""

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from emoforge.curation.footage.encode import VideoFormat
from emoforge.curation.footage.generate import VideoJob, render_video

pytestmark = pytest.mark.slow
SCHEMA = Path(__import__("emoforge.curation.footage", fromlist=["x"]).__file__).parent / "truth.schema.json"
SMALL = VideoFormat("test-480x270", "mp4", "libx264", "aac", 480, 270, Fraction(25), 16000, 1)


def _render(tmp: Path, index: int, seed: int = 7, duration_s: float = 14.0) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    job = VideoJob(tmp, index, seed, duration_s, SMALL)
    render_video(job)
    return json.loads(job.truth_path.read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two short videos whose distractor cycles start at different kinds."""
    root = tmp_path_factory.mktemp("footage")
    return root, [_render(root, index) for index in (0, 1)]


def test_truth_validates_against_its_schema(rendered):
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    _, truths = rendered
    for truth in truths:
        jsonschema.validate(truth, schema)


def test_truth_is_consistent_with_the_file(rendered):
    import av

    root, truths = rendered
    for truth in truths:
        with av.open(str(root / truth["video"]["file"])) as container:
            times = [frame.time for frame in container.decode(video=0)]
        assert len(times) == truth["video"]["n_frames"]
        np.testing.assert_allclose(times, truth["video"]["frame_times_s"], atol=2e-3)
        scenes = truth["scenes"]
        assert scenes[0]["start_frame"] == 0 and scenes[-1]["end_frame"] == len(times)
        assert all(a["end_frame"] == b["start_frame"] for a, b in zip(scenes, scenes[1:]))
        assert any(c["kind"] == "dissolve" for c in truth["cuts"])
        for track in truth["tracks"]:
            n = len(track["frames"])
            assert all(len(track[k]) == n for k in ("yaw_deg", "box_xyxy_px", "speaking", "velocity_deg_per_s"))
        # Speech truth lies inside speaking scenes and the speaker's frames are marked.
        for speech in truth["speech"]:
            scene = scenes[speech["scene"]]
            assert all(scene["start_s"] <= a < b <= scene["end_s"] for a, b in speech["segments_s"])


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, rendered):
    root, truths = rendered
    again = _render(tmp_path / "again", 0)
    assert again == truths[0]
    name = truths[0]["video"]["file"]
    assert (tmp_path / "again" / name).read_bytes() == (root / name).read_bytes()
    other = _render(tmp_path / "other", 0, seed=8)
    assert other["tracks"] != truths[0]["tracks"]


def test_mediapipe_sees_faces_exactly_where_the_truth_puts_them(rendered):
    """≥ 95% of talking-head frames have a detected face; face-less scenes have none."""
    import av
    import mediapipe as mp

    root, truths = rendered
    talking_hits = talking_total = faceless_false = faceless_total = 0
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector:
        for truth in truths:
            kinds = {}
            for scene in truth["scenes"]:
                # Skip dissolve frames: two scenes are blended there.
                for f in range(scene["start_frame"], scene["end_frame"]):
                    kinds[f] = scene["kind"]
            blended = set()
            for cut in truth["cuts"]:
                if cut["kind"] == "dissolve":
                    blended.update(range(cut["start_frame"], cut["end_frame"]))
            with av.open(str(root / truth["video"]["file"])) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index % 3 or index in blended or kinds[index] not in ("talking", "no_face", "voiceover"):
                        continue
                    found = detector.process(frame.to_ndarray(format="rgb24")).detections or []
                    if kinds[index] == "talking":
                        talking_total += 1
                        talking_hits += len(found) >= 1
                    else:
                        faceless_total += 1
                        faceless_false += len(found) > 0
    assert talking_total > 20
    assert talking_hits / talking_total >= 0.95, (talking_hits, talking_total)
    if faceless_total:
        assert faceless_false == 0, (faceless_false, faceless_total)


def test_cli_renders_resumes_and_refuses_bad_arguments(tmp_path):
    command = [sys.executable, "-m", "emoforge", "footage", "--out", str(tmp_path / "out"), "--videos", "1"]
    bad = subprocess.run(command + ["--minutes", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    first = subprocess.run(command + ["--minutes", "0.05", "--workers", "1"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["footage.json", "v000.mp4", "v000.truth.json"]
    second = subprocess.run(command + ["--minutes", "0.05", "--workers", "1"], capture_output=True, text=True)
    assert second.returncode == 0 and "1 already done" in second.stderr


def test_cli_reports_an_unwritable_output_as_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "emoforge", "footage", "--out", str(blocker / "sub"), "--videos", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: cannot create output folder")
