"""The corpus page's numbers: funnel, reject reasons, distributions, sources, throughput.

Read from ``DIR/manifest.parquet`` (source, scene and clip rows), ``DIR/summary.json``
(the last run) and the clip index and decisions in the database. Histograms are binned
here so the page only draws.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from emoforge.dashboards.db import Database
from emoforge.dashboards.queries import latest_decisions

HISTOGRAMS = {  # clip index column -> (title, unit, bin width)
    "p95_abs_yaw_deg": ("yaw, p95 of |angle|", "deg", 5.0),
    "p95_abs_pitch_deg": ("pitch, p95 of |angle|", "deg", 5.0),
    "p95_abs_roll_deg": ("roll, p95 of |angle|", "deg", 5.0),
    "median_face_width_px": ("face width, median", "px", None),
    "duration_s": ("duration", "s", 1.0),
    "mean_velocity_deg_per_s": ("rotation velocity, mean", "deg/s", None),
}


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


@lru_cache(maxsize=4)
def _manifest_frame(path: str, signature: str):
    import pandas as pd

    del signature
    return pd.read_parquet(path)


def _manifest(data_dir: Path):
    path = Path(data_dir) / "manifest.parquet"
    if not path.is_file():
        return None
    stat = path.stat()
    return _manifest_frame(str(path), f"{stat.st_mtime_ns}:{stat.st_size}")


def histogram(values: list[float], width: float | None, bins: int = 12) -> dict:
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return {"edges": [], "counts": []}
    low = 0.0 if width else float(values.min())
    high = float(values.max())
    if width:
        edges = np.arange(low, max(high, low + width) + width, width)
    else:
        edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    counts, edges = np.histogram(values, bins=edges)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def corpus_stats(db: Database, data_dir: Path) -> dict:
    data_dir = Path(data_dir)
    table = _manifest(data_dir)
    standing = latest_decisions(db)
    rejected_by_review = {r["clip_id"] for r in standing if r["decision"] == "reject"}
    accepted_by_review = {r["clip_id"] for r in standing if r["decision"] == "accept"} - rejected_by_review
    reviewed = {r["clip_id"] for r in standing}

    clips = db.query(
        "SELECT clip_id, source_id, status, duration_s, speed_bucket, license, language, "
        + ", ".join(HISTOGRAMS) + " FROM clips"
    )
    kept = [c for c in clips if c["status"] == "kept"]
    kept_hours = sum(c["duration_s"] or 0 for c in kept) / 3600

    funnel = []
    reasons = []
    sources = []
    if table is not None:
        kind = table["row_kind"] if "row_kind" in table.columns else None

        def rows(name):
            return table[kind == name] if kind is not None else table.iloc[0:0]

        source_rows, scene_rows, clip_rows = rows("source"), rows("scene"), rows("clip")
        hours_in = float(np.nansum(source_rows.get("source_duration_s", [])) / 3600) if len(source_rows) else 0.0
        usable = source_rows[source_rows["status"] == "kept"] if len(source_rows) else source_rows
        scene_s = (scene_rows["end_s"] - scene_rows["start_s"]) if len(scene_rows) else None
        clip_s = clip_rows["n_frames"] / 25.0 if len(clip_rows) else None
        funnel = [
            {"stage": "footage in", "hours": hours_in, "items": int(len(source_rows)), "unit": "sources"},
            {"stage": "sources usable", "hours": float(np.nansum(usable.get("source_duration_s", [])) / 3600),
             "items": int(len(usable)), "unit": "sources"},
            {"stage": "scenes with one talking face",
             "hours": float(np.nansum(scene_s[scene_rows["status"] == "kept"]) / 3600) if scene_s is not None else 0.0,
             "items": int((scene_rows["status"] == "kept").sum()) if len(scene_rows) else 0, "unit": "scenes"},
            {"stage": "clips cut", "hours": float(np.nansum(clip_s) / 3600) if clip_s is not None else 0.0,
             "items": int(len(clip_rows)), "unit": "clips"},
            {"stage": "clips kept by filters", "hours": kept_hours, "items": len(kept), "unit": "clips"},
            {"stage": "kept, not rejected in review",
             "hours": sum(c["duration_s"] or 0 for c in kept if c["clip_id"] not in rejected_by_review) / 3600,
             "items": sum(1 for c in kept if c["clip_id"] not in rejected_by_review), "unit": "clips"},
        ]
        for (row_kind, reason), group in table[table["status"] != "kept"].groupby(["row_kind", "reason"], dropna=False):
            if row_kind == "source":
                seconds = np.nansum(group.get("source_duration_s", []))
            elif row_kind == "scene":
                seconds = np.nansum(group["end_s"] - group["start_s"])
            elif row_kind == "clip":
                seconds = np.nansum(group["n_frames"]) / 25.0
            else:
                seconds = 0.0
            reasons.append({"stage": str(row_kind), "reason": _text(reason) or "(no reason)",
                            "count": int(len(group)), "hours": float(seconds) / 3600})
        reasons.sort(key=lambda r: (-r["count"], r["stage"], r["reason"]))
        review_by_source: dict[str, dict] = {}
        clip_source = {c["clip_id"]: c["source_id"] for c in clips}
        for clip_id in reviewed:
            entry = review_by_source.setdefault(clip_source.get(clip_id, ""), {"reviewed": 0, "rejected": 0})
            entry["reviewed"] += 1
            entry["rejected"] += clip_id in rejected_by_review
        for record in source_rows.to_dict("records"):
            source_id = _text(record.get("source_id")) or ""
            sources.append({
                "source_id": source_id,
                "title": _text(record.get("prov_title")),
                "location": _text(record.get("location")),
                "license": _text(record.get("prov_license")),
                "status": _text(record.get("status")),
                "reason": _text(record.get("reason")),
                "duration_s": _finite(record.get("source_duration_s")),
                "scenes": _finite(record.get("n_scenes")),
                "clips_kept": _finite(record.get("n_clips")),
                "kept_s": _finite(record.get("kept_s")),
                **review_by_source.get(source_id, {"reviewed": 0, "rejected": 0}),
            })
        sources.sort(key=lambda s: s["source_id"])

    distributions = {
        "speed_bucket": _categorical(c["speed_bucket"] for c in kept),
        "license": _categorical(c["license"] for c in kept),
        "language": _categorical(c["language"] for c in kept),
    }
    for column, (title, unit, width) in HISTOGRAMS.items():
        distributions[column] = {"title": title, "unit": unit, **histogram([c[column] for c in kept], width)}

    summary = {}
    try:
        summary = json.loads((data_dir / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    throughput = None
    if summary.get("wall_s"):
        wall = float(summary["wall_s"])
        throughput = {
            "wall_s": wall,
            "hours_in": summary.get("hours_in"),
            "hours_kept": summary.get("hours_kept"),
            "clips": summary.get("clips"),
            "footage_hours_per_wall_hour": (summary.get("hours_in") or 0) * 3600 / wall,
            "clips_per_minute": (summary.get("clips") or 0) * 60 / wall,
            "cpu_s_by_stage": summary.get("cpu_s_by_stage") or {},
        }
    return {
        "funnel": funnel,
        "reject_reasons": reasons,
        "distributions": distributions,
        "sources": sources,
        "throughput": throughput,
        "review": {"reviewed": len(reviewed), "accepted": len(accepted_by_review), "rejected": len(rejected_by_review)},
        "clips_indexed": len(clips),
    }


def _categorical(values) -> dict:
    counts: dict[str, int] = {}
    for value in values:
        key = "unknown" if value is None else str(value)
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (kv[0] == "unknown", _sort_key(kv[0])))
    return {"labels": [k for k, _ in ordered], "counts": [v for _, v in ordered]}


def _sort_key(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
