"""Speaker turns with pyannote-audio — an optional, guarded extra.

pyannote-audio cannot import on these machines (its torchaudio/torchcodec are
CUDA-linked) and its pretrained pipelines cannot be downloaded here, so diarisation
runs only where ``pyannote.audio`` imports *and* the user gives a local pipeline
folder. Everything around it works on plain turns, ``(start_s, end_s, speaker)``,
which :func:`turns_from_annotation` reads from any ``pyannote.core.Annotation`` (or
anything with the same ``itertracks(yield_label=True)``), so it is tested without
pyannote-audio.

What turns are for: in a shot with several faces, the speaking face changes with the
turns; :func:`match_tracks_to_speakers` gives each speaker the face track whose mouth
moves with the audio during that speaker's turns (the mouth–audio sync of
:mod:`emoforge.labeling.sync`, restricted to the turn's frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoforge.errors import UserError


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str


def pyannote_available() -> bool:
    try:
        import pyannote.audio  # noqa: F401
    except Exception:  # ImportError, or its CUDA-linked dependencies failing to load
        return False
    return True


def diarize(samples_16k: np.ndarray, pipeline_dir) -> list[Turn]:
    """Speaker turns of 16 kHz mono audio by a local pyannote pipeline folder."""
    pipeline_dir = Path(pipeline_dir)
    if not pipeline_dir.exists():
        raise UserError(f"no pyannote pipeline at {pipeline_dir}")
    try:
        import torch
        from pyannote.audio import Pipeline
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        raise UserError(
            f"speaker turns need pyannote-audio, which does not import here ({exc}); "
            "install it where its torchaudio works: pip install pyannote.audio"
        ) from None
    pipeline = Pipeline.from_pretrained(str(pipeline_dir))
    waveform = torch.from_numpy(np.asarray(samples_16k, dtype=np.float32))[None]
    result = pipeline({"waveform": waveform, "sample_rate": 16000})
    annotation = getattr(result, "speaker_diarization", result)  # pyannote 4 wraps the annotation
    return turns_from_annotation(annotation)


def turns_from_annotation(annotation) -> list[Turn]:
    """Turns, sorted by start, from a ``pyannote.core.Annotation``."""
    turns = [
        Turn(float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    ]
    return sorted(turns, key=lambda t: (t.start_s, t.end_s, t.speaker))


def speaker_per_frame(turns: list[Turn], time_s: np.ndarray, fps: float) -> list[str | None]:
    """The speaker of each frame (at its centre time); None in silence; overlaps go to the later start."""
    centres = np.asarray(time_s, dtype=np.float64) + 0.5 / fps
    out: list[str | None] = [None] * len(centres)
    for turn in turns:
        for f in np.flatnonzero((centres >= turn.start_s) & (centres < turn.end_s)):
            out[f] = turn.speaker
    return out


def match_tracks_to_speakers(
    turns: list[Turn],
    time_s: np.ndarray,
    fps: float,
    mouth_by_track: dict[int, np.ndarray],
    log_envelope: np.ndarray,
    min_score: float = 0.2,
) -> dict[str, int | None]:
    """For each speaker, the track whose mouth follows the audio best over that speaker's frames."""
    from emoforge.labeling.sync import sync_score

    per_frame = np.array(speaker_per_frame(turns, time_s, fps), dtype=object)
    matches: dict[str, int | None] = {}
    for speaker in sorted({t.speaker for t in turns}):
        own = per_frame == speaker
        best, best_track = min_score, None
        for track, mouth in mouth_by_track.items():
            mouth_in_turns = np.where(own, np.asarray(mouth, dtype=np.float64), np.nan)
            score = sync_score(mouth_in_turns, log_envelope, max_offset_frames=0).score
            if np.isfinite(score) and score > best:
                best, best_track = score, track
        matches[speaker] = best_track
    return matches
