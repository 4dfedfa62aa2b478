"""The manifest: one parquet table, a row per source, per screened scene and per clip.

It is the index that shard builds, splits and dashboards query. Every source the run
was given appears (input rejects too), every scene the scan found, and every clip
window judged, each with ``status`` and ``reason``; provenance is untrusted text kept
as text. Rebuilt whole from the per-source records at the end of each run, and
written atomically, so it never holds a duplicate or a half-written row.
"""

from __future__ import annotations

import os
from pathlib import Path

PROVENANCE_COLUMNS = (
    "title", "uploader", "channel", "license", "upload_date", "duration_s", "webpage_url",
    "extractor", "extractor_id", "takedown",
)
STAT_COLUMNS = (
    "face_fraction", "median_face_width_px", "p95_abs_yaw_deg", "p95_abs_pitch_deg", "mean_abs_yaw_deg",
    "speech_fraction", "mean_velocity_deg_per_s", "velocity_variance", "av_offset_frames", "sharpness",
)


def manifest_rows(records: list[dict], input_rejects: list[dict]) -> list[dict]:
    rows = []
    for reject in input_rejects:
        rows.append({"row_kind": "source", "source_id": reject["source_id"], "status": "rejected",
                     "reason": reject["reason"], "origin": reject["origin"], "location": reject["item"]})
    for record in records:
        provenance = record.get("provenance") or {}
        probe = record.get("probe") or {}
        base = {"source_id": record["source_id"]}
        source_row = {
            **base,
            "row_kind": "source",
            "status": record["status"],
            "reason": record.get("reason"),
            "origin": record.get("origin"),
            "location": record.get("location"),
            "download_sha256": record.get("sha256"),
            "source_duration_s": probe.get("duration_s"),
            "width": probe.get("width"),
            "height": probe.get("height"),
            "nominal_fps": probe.get("nominal_fps"),
            "video_codec": probe.get("video_codec"),
            "audio_codec": probe.get("audio_codec"),
            "n_scenes": len(record.get("scenes", [])),
            "n_clips": sum(1 for c in record.get("clips", []) if c["status"] == "kept"),
            "kept_s": sum(c["n_frames"] for c in record.get("clips", []) if c["status"] == "kept") / 25.0,
        }
        for key in PROVENANCE_COLUMNS:
            source_row[f"prov_{key}"] = _provenance_value(key, provenance.get(key))
        rows.append(source_row)
        for scene in record.get("scenes", []):
            rows.append({
                **base,
                "row_kind": "scene",
                "scene_index": scene["index"],
                "status": "kept" if scene["keep"] else "rejected",
                "reason": scene["reason"],
                "start_s": scene["start_s"],
                "end_s": scene["end_s"],
                "face_fraction": scene["face_fraction"],
                "median_face_width_px": scene["median_face_width_px"],
            })
        for span in record.get("span_results", []):
            if span["status"] != "ok":
                rows.append({**base, "row_kind": "span", "clip_id": span["span_id"], "status": span["status"],
                             "reason": span["reason"]})
        for clip in record.get("clips", []):
            row = {
                **base,
                "row_kind": "clip",
                "clip_id": clip["clip_id"],
                "scene_index": clip["scene_index"],
                "status": clip["status"],
                "reason": clip["reason"],
                "start_s": clip["start_s"],
                "end_s": clip["end_s"],
                "n_frames": clip["n_frames"],
                "sha256": clip.get("sha256"),
                "prov_title": _provenance_value("title", provenance.get("title")),
                "prov_license": _provenance_value("license", provenance.get("license")),
            }
            for key in STAT_COLUMNS:
                row[key] = clip["stats"].get(key)
            rows.append(row)
    return rows


def write_manifest(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    frame = pd.DataFrame(rows)
    order = ["row_kind", "source_id", "clip_id", "scene_index", "status", "reason"]
    for column in order:
        if column not in frame:
            frame[column] = None
    frame = frame[order + [c for c in frame.columns if c not in order]]
    frame = frame.sort_values(["source_id", "row_kind", "scene_index", "clip_id"], na_position="first", kind="stable")
    partial = path.with_name(path.name + ".partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)
    return path


def _provenance_value(key: str, value):
    """One type per column: numbers for duration, a flag for takedown, text for the rest."""
    if value is None:
        return None
    if key == "duration_s":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if key == "takedown":
        return bool(value)
    return str(value)
