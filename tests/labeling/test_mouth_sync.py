import numpy as np

from emoforge.labeling.sync import mouth_opening, pick_speaker, sync_score
from emoforge.labeling.speakers import Turn, match_tracks_to_speakers, speaker_per_frame, turns_from_annotation


def _speech_like(n, seed):
    rng = np.random.default_rng(seed)
    return np.convolve(rng.random(n), np.ones(3) / 3, mode="same")


def test_sync_finds_the_offset_and_the_speaker():
    n = 200
    envelope = _speech_like(n, 0)
    speaking = np.roll(envelope, 2) * 0.3 + 0.01 * np.random.default_rng(1).random(n)  # picture 2 frames late
    silent = 0.05 + 0.01 * np.random.default_rng(2).random(n)
    other = _speech_like(n, 3) * 0.3  # a mouth moving to something else
    scores = {7: sync_score(speaking, envelope), 9: sync_score(silent, envelope), 11: sync_score(other, envelope)}
    assert scores[7].offset_frames == 2 and scores[7].score > 0.9
    assert abs(scores[9].score) < 0.35
    assert pick_speaker(scores) == 7
    # two equally good mouths cannot be told apart
    assert pick_speaker({1: scores[7], 2: scores[7]}) is None


def test_sync_needs_enough_frames():
    result = sync_score(np.full(10, 0.1), np.arange(10.0))
    assert np.isnan(result.score) and result.offset_frames == 0


def test_mouth_opening_is_gap_over_face_height():
    mesh = np.zeros((478, 3))
    mesh[10] = [0, 0, 0]
    mesh[152] = [0, 100, 0]
    mesh[13] = [0, 60, 0]
    mesh[14] = [0, 72, 0]
    assert mouth_opening(mesh) == 0.12
    assert np.isnan(mouth_opening(np.full((478, 3), np.nan)))


class _Segment:
    def __init__(self, start, end):
        self.start, self.end = start, end


class _FakeAnnotation:
    """Duck-typed pyannote.core.Annotation (the real one is tested when pyannote.core imports)."""

    def __init__(self, tracks):
        self._tracks = tracks

    def itertracks(self, yield_label=False):
        for (start, end), label in self._tracks:
            yield _Segment(start, end), "_", label


def test_turns_and_speaker_matching():
    annotation = _FakeAnnotation([((2.0, 4.0), "B"), ((0.0, 2.0), "A")])
    turns = turns_from_annotation(annotation)
    assert turns == [Turn(0.0, 2.0, "A"), Turn(2.0, 4.0, "B")]
    fps, n = 25.0, 100
    time_s = np.arange(n) / fps
    assert speaker_per_frame(turns, time_s, fps)[:1] == ["A"] and speaker_per_frame(turns, time_s, fps)[60] == "B"
    envelope = _speech_like(n, 5)
    mouth_a = np.where(time_s < 2.0, envelope, 0.02)  # A's face moves in A's turn
    mouth_b = np.where(time_s >= 2.0, envelope, 0.02)
    mouth_b = mouth_b + 0.001 * np.random.default_rng(0).random(n)
    assert match_tracks_to_speakers(turns, time_s, fps, {3: mouth_a, 4: mouth_b}, envelope) == {"A": 3, "B": 4}


def test_turns_from_a_real_pyannote_annotation():
    import pytest

    core = pytest.importorskip("pyannote.core")
    annotation = core.Annotation()
    annotation[core.Segment(1.0, 2.5)] = "spk1"
    annotation[core.Segment(0.0, 1.0)] = "spk0"
    assert turns_from_annotation(annotation) == [Turn(0.0, 1.0, "spk0"), Turn(1.0, 2.5, "spk1")]


def test_diarize_is_a_clear_error_without_pyannote(tmp_path):
    import pytest

    from emoforge.errors import UserError
    from emoforge.labeling.speakers import diarize, pyannote_available

    if pyannote_available():
        pytest.skip("pyannote-audio imports here")
    with pytest.raises(UserError, match="pyannote"):
        diarize(np.zeros(16000, np.float32), tmp_path)
