"""A clip's labels as JSON for the player: the pipeline's own frame index, never an fps guess.

The player looks up each presented video frame by its presentation time in
``frame_time_s`` (the labeler's per-frame times, ``docs/labels.md``) and draws that
row's box, mesh and pose axes. NaN ("no value") becomes ``null``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from emoforge.dashboards.index import load_bucket_edges, speed_bucket


def _rounded(array: np.ndarray, digits: int) -> list:
    """Nested lists with NaN -> None; rows that are all NaN become a single None."""
    array = np.round(np.asarray(array, dtype=np.float64), digits)
    if array.ndim == 1:
        return [None if not np.isfinite(v) else float(v) for v in array]
    out = []
    for row in array:
        if not np.isfinite(row).any():
            out.append(None)
        else:
            out.append(_rounded(row, digits))
    return out


@lru_cache(maxsize=64)
def _labels_payload(npz_path: str, json_path: str | None, data_dir: str, signature: str) -> bytes:
    del signature  # part of the cache key only: a rewritten file is read again
    with np.load(npz_path) as arrays:
        frame_time_s = arrays["frame_time_s"].astype(np.float64)
        n = len(frame_time_s)
        velocity = arrays["velocity_deg_per_s"].astype(np.float64)
        rotation = arrays["rotation"].astype(np.float64) if "rotation" in arrays.files else np.full((n, 3, 3), np.nan)
        payload = {
            "n_frames": n,
            "frame_time_s": [float(t) for t in frame_time_s],
            "box_xyxy_px": _rounded(arrays["box_xyxy_px"], 2),
            "yaw_pitch_roll_deg": _rounded(arrays["yaw_pitch_roll_deg"], 3),
            "velocity_deg_per_s": _rounded(velocity, 3),
            "speech": [bool(s) for s in arrays["speech"]] if "speech" in arrays.files else [False] * n,
            "pose_valid": [bool(p) for p in arrays["pose_valid"]] if "pose_valid" in arrays.files else [True] * n,
            # Row-major head->camera rotations: columns are the head's axes in camera coordinates.
            "rotation": _rounded(rotation.reshape(n, 9), 5),
            "has_mesh": "mesh_px" in arrays.files,
        }
    edges = load_bucket_edges(Path(data_dir))
    payload["bucket_edges_deg_per_s"] = edges
    payload["speed_bucket"] = [speed_bucket(v, edges) if v is not None else None for v in payload["velocity_deg_per_s"]]
    meta = {}
    if json_path:
        try:
            meta = json.loads(Path(json_path).read_text())
        except (OSError, ValueError):
            meta = {}
    payload["size_px"] = meta.get("size_px")
    payload["fps_nominal"] = meta.get("fps")  # shown, never used to find a frame
    payload["source_span_s"] = meta.get("source_span_s")
    payload["stats"] = meta.get("stats") or {}
    payload["provenance"] = meta.get("provenance") or {}  # untrusted text: the page renders it as text only
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


@lru_cache(maxsize=8)
def _mesh_payload(npz_path: str, signature: str) -> bytes:
    del signature
    with np.load(npz_path) as arrays:
        if "mesh_px" not in arrays.files:
            return b'{"mesh_px":null}'
        mesh = arrays["mesh_px"][..., :2].astype(np.float64)
    frames = []
    for points in mesh:
        if not np.isfinite(points).all():
            frames.append(None)
        else:
            frames.append(np.round(points, 1).reshape(-1).tolist())
    return json.dumps({"mesh_px": frames}, allow_nan=False, separators=(",", ":")).encode()


def _signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def labels_payload(npz_path: Path, json_path: Path | None, data_dir: Path) -> bytes:
    return _labels_payload(str(npz_path), str(json_path) if json_path else None, str(data_dir), _signature(npz_path))


def mesh_payload(npz_path: Path) -> bytes:
    return _mesh_payload(str(npz_path), _signature(npz_path))
