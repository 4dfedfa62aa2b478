"""The per-video label files (format documented in docs/labels.md), written atomically.

One video gives, in the output folder::

    <video_id>.labels.npz    per-frame and per-detection arrays (compressed npz)
    <video_id>.audio.npz     audio features: log-mel, and wav2vec2 when a model was given
    <video_id>.labels.json   metadata: version, status and reason, shots, tracks, config

The JSON is written last: a video is finished exactly when its JSON exists, so an
interrupted run leaves no file that claims to be complete. A rejected video has only
its JSON (``status: "rejected"`` and a ``reason``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoforge.errors import UserError
from emoforge.files import file_sha256, npz_bytes, write_bytes_atomic, write_text_atomic  # noqa: F401 (re-exported)

LABELS_FORMAT = "emoforge.labels"
LABELS_VERSION = 1


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    return write_bytes_atomic(path, npz_bytes(arrays))


def video_id_for(path, sha256: str) -> str:
    """``<stem>-<first 10 hex of the file's sha256>``: stable across reruns and renames of the folder."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(path).stem)[:64]
    return f"{stem}-{sha256[:10]}"


@dataclass
class VideoLabels:
    """A video's labels in memory: ``meta`` (the JSON) and its arrays."""

    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    audio: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.meta.get("status") == "ok"


def paths_for(out_dir, video_id: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {
        "json": out_dir / f"{video_id}.labels.json",
        "arrays": out_dir / f"{video_id}.labels.npz",
        "audio": out_dir / f"{video_id}.audio.npz",
    }


def write_labels(out_dir, labels: VideoLabels) -> Path:
    """Arrays first, JSON last (the commit marker); returns the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = paths_for(out_dir, labels.meta["video_id"])
    meta = dict(labels.meta, format=LABELS_FORMAT, version=LABELS_VERSION)
    if labels.arrays:
        write_npz_atomic(paths["arrays"], labels.arrays)
        meta["arrays_file"] = paths["arrays"].name
    if labels.audio:
        write_npz_atomic(paths["audio"], labels.audio)
        meta["audio_file"] = paths["audio"].name
    return write_text_atomic(paths["json"], json.dumps(meta, indent=1, allow_nan=False) + "\n")


def read_labels(json_path, arrays: bool = True, audio: bool = False) -> VideoLabels:
    """Read a video's labels; checks the format name and version."""
    json_path = Path(json_path)
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read labels {json_path}: {exc}") from None
    if meta.get("format") != LABELS_FORMAT or meta.get("version") != LABELS_VERSION:
        raise UserError(
            f"{json_path} is format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"this emoforge reads {LABELS_FORMAT!r} version {LABELS_VERSION}"
        )
    labels = VideoLabels(meta)
    if arrays and meta.get("arrays_file"):
        with np.load(json_path.parent / meta["arrays_file"]) as data:
            labels.arrays = {k: data[k] for k in data.files}
    if audio and meta.get("audio_file"):
        with np.load(json_path.parent / meta["audio_file"]) as data:
            labels.audio = {k: data[k] for k in data.files}
    return labels


def find_labels(out_dir) -> list[Path]:
    return sorted(Path(out_dir).glob("*.labels.json"))


def clip_face_masks(labels: VideoLabels, start_frame: int, stop_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """The Face Locator mask of frames ``[start, stop)``: the union of the dominant face's boxes,
    at frame size and at latent size (see :mod:`emoforge.labeling.mask`)."""
    from emoforge.labeling.mask import face_region_masks

    video = labels.meta["video"]
    boxes = labels.arrays["box_xyxy_px"][start_frame:stop_frame]
    return face_region_masks(boxes, video["height"], video["width"])
