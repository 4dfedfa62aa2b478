"""The clip index: the manifest's clip rows in the database, so lists filter, sort and page in SQL.

Two passes. ``sync_manifest`` copies every ``row_kind == "clip"`` row of
``DIR/manifest.parquet`` (or, without a manifest, every ``clips/<id>.json``) into the
``clips`` table; it is skipped when the manifest is unchanged. ``sync_label_stats``
then reads each playable clip's ``labels.npz`` once (about a millisecond a clip) for
what the manifest lacks: roll, the peak rotation velocity, and the signs of
suspicious labels that feed the review queue. It only reads clips whose label file
changed since the last pass, so a restart over 100k indexed clips costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from emoforge.dashboards.db import Database, create_clip_indexes, drop_clip_indexes

# Clip ids are "<source hash>-<start:07d>-<stop:07d>"; anything outside this alphabet is
# never used to build a path (ids come from a manifest, which is data, not code).
CLIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$")
FPS = 25.0
BATCH = 20_000

MANIFEST_COLUMNS = (
    "clip_id", "source_id", "status", "reason", "title", "license", "language", "n_frames", "duration_s",
    "has_media", "speed_bucket", "mean_velocity_deg_per_s", "p95_abs_yaw_deg", "p95_abs_pitch_deg",
    "median_face_width_px", "speech_fraction", "qa_rank",
)
LABEL_COLUMNS = ("p95_abs_roll_deg", "max_velocity_deg_per_s", "suspicion", "suspicion_reasons", "labels_signature")

# Thresholds for the "suspicious labels" queue (labels that look wrong, not clips that look bad).
SPIKE_MIN_DEG_PER_S = 60.0  # a peak above this and ...
SPIKE_FACTOR = 4.0  # ... this many times the clip's median velocity
POSE_JUMP_DEG_PER_FRAME = 10.0  # raw angle between consecutive frames (250 deg/s at 25 fps)
BOX_JUMP_FRACTION = 0.25  # box centre moving a quarter of the box width in one frame
POSE_MISSING_FRACTION = 0.1


def valid_clip_id(clip_id: str) -> bool:
    return bool(CLIP_ID_PATTERN.match(clip_id or ""))


def qa_rank(clip_id: str) -> float:
    """A fixed pseudo-random number per clip: the QA sample is the clips with the smallest ranks."""
    return int(hashlib.sha256(("qa:" + clip_id).encode()).hexdigest()[:13], 16) / 16**13


def load_bucket_edges(data_dir: Path) -> list[float] | None:
    path = Path(data_dir) / "speed_buckets.json"
    try:
        edges = json.loads(path.read_text())["edges_deg_per_s"]
        return [float(e) for e in edges]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def speed_bucket(velocity_deg_per_s, edges: list[float] | None) -> int | None:
    """Bucket index of a velocity (the bucket whose edges hold it; outside ones clamp)."""
    if edges is None or velocity_deg_per_s is None or not math.isfinite(velocity_deg_per_s):
        return None
    inner = np.asarray(edges[1:-1])
    return int(np.searchsorted(inner, velocity_deg_per_s, side="right"))


def _file_signature(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _number(value):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def manifest_clip_rows(data_dir: Path) -> list[dict]:
    """One dict per clip of the curation output, with the columns of the ``clips`` table."""
    data_dir = Path(data_dir)
    clips_dir = data_dir / "clips"
    edges = load_bucket_edges(data_dir)
    manifest = data_dir / "manifest.parquet"
    records: list[dict] = []
    if manifest.is_file():
        import pandas as pd

        table = pd.read_parquet(manifest)
        if "row_kind" in table.columns:
            table = table[table["row_kind"] == "clip"]
        records = table.to_dict("records")
    elif clips_dir.is_dir():
        for path in sorted(clips_dir.glob("*.json")):
            stem = path.name[: -len(".json")]
            if "." in stem:
                continue
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            records.append({
                "clip_id": stem, "source_id": meta.get("source_id"), "status": "kept", "reason": None,
                "n_frames": meta.get("n_frames"), **(meta.get("stats") or {}),
                "prov_title": (meta.get("provenance") or {}).get("title"),
                "prov_license": (meta.get("provenance") or {}).get("license"),
            })
    rows = []
    for record in records:
        clip_id = _text(record.get("clip_id"))
        if not clip_id or not valid_clip_id(clip_id):
            continue
        n_frames = _number(record.get("n_frames"))
        has_media = (clips_dir / f"{clip_id}.mp4").is_file() and (clips_dir / f"{clip_id}.labels.npz").is_file()
        mean_velocity = _number(record.get("mean_velocity_deg_per_s"))
        rows.append({
            "clip_id": clip_id,
            "source_id": _text(record.get("source_id")) or "",
            "status": _text(record.get("status")) or "unknown",
            "reason": _text(record.get("reason")),
            "title": _text(record.get("prov_title")),
            "license": _text(record.get("prov_license")),
            "language": _text(record.get("language", record.get("prov_language"))),
            "n_frames": None if n_frames is None else int(n_frames),
            "duration_s": None if n_frames is None else n_frames / FPS,
            "has_media": int(has_media),
            "speed_bucket": speed_bucket(mean_velocity, edges),
            "mean_velocity_deg_per_s": mean_velocity,
            "p95_abs_yaw_deg": _number(record.get("p95_abs_yaw_deg")),
            "p95_abs_pitch_deg": _number(record.get("p95_abs_pitch_deg")),
            "median_face_width_px": _number(record.get("median_face_width_px")),
            "speech_fraction": _number(record.get("speech_fraction")),
            "qa_rank": qa_rank(clip_id),
        })
    return rows


def sync_manifest(db: Database, data_dir: Path, force: bool = False) -> int:
    """Copy the manifest's clips into the index; returns how many rows it holds."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.parquet"
    signature = f"{_file_signature(manifest)}|{_file_signature(data_dir / 'speed_buckets.json')}|{_file_signature(data_dir / 'clips')}"
    if not force and db.get_meta("manifest_signature") == signature:
        return int(db.scalar("SELECT COUNT(*) AS n FROM clips") or 0)
    rows = manifest_clip_rows(data_dir)
    upsert_clip_rows(db, rows)
    wanted = {row["clip_id"] for row in rows}
    existing = [r["clip_id"] for r in db.query("SELECT clip_id FROM clips")]
    stale = [clip_id for clip_id in existing if clip_id not in wanted]
    for start in range(0, len(stale), BATCH):
        with db.transaction() as tx:
            tx.run_many("DELETE FROM clips WHERE clip_id = ?", [(c,) for c in stale[start:start + BATCH]])
    db.set_meta("manifest_signature", signature)
    return len(rows)


def upsert_clip_rows(db: Database, rows: list[dict]) -> None:
    """Insert or refresh manifest columns, leaving label statistics alone."""
    columns = ", ".join(MANIFEST_COLUMNS)
    marks = ", ".join("?" for _ in MANIFEST_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in MANIFEST_COLUMNS if c != "clip_id")
    sql = f"INSERT INTO clips ({columns}) VALUES ({marks}) ON CONFLICT (clip_id) DO UPDATE SET {updates}"
    rows = sorted(rows, key=lambda row: row["clip_id"])  # in key order: index pages fill one after another
    # A first load of many clips: build the secondary indexes once at the end (several times faster).
    bulk = len(rows) > BATCH and not db.scalar("SELECT COUNT(*) AS n FROM clips")
    if bulk:
        with db.transaction() as tx:
            drop_clip_indexes(tx)
    try:
        for start in range(0, len(rows), BATCH):
            with db.transaction() as tx:
                tx.run_many(sql, [[row.get(c) for c in MANIFEST_COLUMNS] for row in rows[start:start + BATCH]])
    finally:
        if bulk:
            with db.transaction() as tx:
                create_clip_indexes(tx)


def label_stats(npz_path: Path) -> dict:
    """Roll, peak velocity and suspicion of one clip, from its ``labels.npz`` (docs/labels.md)."""
    with np.load(npz_path) as arrays:
        ypr = arrays["yaw_pitch_roll_deg"].astype(np.float64)
        velocity = arrays["velocity_deg_per_s"].astype(np.float64)
        raw = arrays["velocity_raw_deg_per_frame"].astype(np.float64) if "velocity_raw_deg_per_frame" in arrays.files else None
        boxes = arrays["box_xyxy_px"].astype(np.float64)
        pose_valid = arrays["pose_valid"].astype(bool) if "pose_valid" in arrays.files else np.isfinite(ypr).all(axis=1)
    reasons = []
    score = 0.0
    finite_v = velocity[np.isfinite(velocity)]
    max_velocity = float(finite_v.max()) if finite_v.size else None
    if finite_v.size:
        median = float(np.median(finite_v))
        if max_velocity > SPIKE_MIN_DEG_PER_S and max_velocity > SPIKE_FACTOR * max(median, 1.0):
            frame = int(np.nanargmax(np.where(np.isfinite(velocity), velocity, -np.inf)))
            reasons.append(f"velocity spike {max_velocity:.0f} deg/s at frame {frame} (median {median:.0f})")
            score += max_velocity / max(median, 1.0) / SPIKE_FACTOR
    if raw is not None:
        finite_raw = raw[np.isfinite(raw)]
        if finite_raw.size and finite_raw.max() > POSE_JUMP_DEG_PER_FRAME:
            reasons.append(f"pose jumps {finite_raw.max():.0f} deg in one frame")
            score += float(finite_raw.max()) / POSE_JUMP_DEG_PER_FRAME
    widths = boxes[:, 2] - boxes[:, 0]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    if len(boxes) > 1:
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) / np.maximum(widths[1:], 1.0)
        steps = steps[np.isfinite(steps)]
        if steps.size and steps.max() > BOX_JUMP_FRACTION:
            reasons.append(f"face box jumps {steps.max():.0%} of its width in one frame")
            score += float(steps.max()) / BOX_JUMP_FRACTION
    missing = 1.0 - float(pose_valid.mean()) if len(pose_valid) else 1.0
    if missing > POSE_MISSING_FRACTION:
        reasons.append(f"no pose on {missing:.0%} of frames")
        score += missing / POSE_MISSING_FRACTION
    roll = np.abs(ypr[:, 2])
    roll = roll[np.isfinite(roll)]
    return {
        "p95_abs_roll_deg": float(np.percentile(roll, 95)) if roll.size else None,
        "max_velocity_deg_per_s": max_velocity,
        "suspicion": round(score, 4),
        "suspicion_reasons": "; ".join(reasons) or None,
    }


def sync_label_stats(db: Database, data_dir: Path, stop=None, progress=None) -> int:
    """Fill label statistics for clips whose ``labels.npz`` is new or changed; returns how many were read."""
    clips_dir = Path(data_dir) / "clips"
    rows = db.query("SELECT clip_id, labels_signature FROM clips WHERE has_media = 1")
    pending = []
    for row in rows:
        signature = _file_signature(clips_dir / f"{row['clip_id']}.labels.npz")
        if signature and signature != row["labels_signature"]:
            pending.append((row["clip_id"], signature))
    done = 0
    sql = f"UPDATE clips SET {', '.join(c + ' = ?' for c in LABEL_COLUMNS)} WHERE clip_id = ?"
    for start in range(0, len(pending), 500):
        if stop is not None and stop.is_set():
            break
        batch = []
        for clip_id, signature in pending[start:start + 500]:
            try:
                stats = label_stats(clips_dir / f"{clip_id}.labels.npz")
            except (OSError, ValueError, KeyError) as exc:
                stats = {"p95_abs_roll_deg": None, "max_velocity_deg_per_s": None, "suspicion": 100.0,
                         "suspicion_reasons": f"labels unreadable: {type(exc).__name__}"}
            batch.append([stats[c] for c in LABEL_COLUMNS[:-1]] + [signature, clip_id])
        with db.transaction() as tx:
            tx.run_many(sql, batch)
        done += len(batch)
        if progress:
            progress(done, len(pending))
    return done


def clip_file(data_dir: Path, clip_id: str, suffix: str) -> Path | None:
    """``DIR/clips/<clip_id><suffix>`` if it is a regular file inside the data folder (symlinks resolved), else None."""
    if not valid_clip_id(clip_id) or suffix not in (".mp4", ".labels.npz", ".json"):
        return None
    root = Path(data_dir).resolve()
    candidate = root / "clips" / f"{clip_id}{suffix}"
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved
