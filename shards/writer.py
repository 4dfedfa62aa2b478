"""Build WebDataset shards from curated clips + their label files + the curation manifest.

``build_shards(curated_dir, out_dir, config)``, top to bottom:

1. **select** (manifest.py): kept clips, new thresholds, annotators' rejections.
2. **prepare**: read each clip's labels and audio header; a clip whose files disagree
   (missing arrays, wrong frame count, audio not 16 kHz mono) is dropped with a reason.
3. **split** (splits.py): by source and identity; or reuse a saved ``splits.parquet``.
4. **speed buckets**: a saved file, or fitted on the train split's velocities
   (``emoforge.labeling.speed``); saved as ``speed_buckets.json``.
5. **pack**: per split, clips in a fixed pseudo-random order (by the hash of their id,
   so one source's clips spread over shards) cut into ``max(min_shards_per_split,
   round(bytes / shard_size_mb))`` shards of near-equal size, named ``<split>-NNNNNN.tar``.
6. **write**: each shard under a temporary name, renamed when complete; sample members
   stored together, JSON last; byte-identical on a rerun (an identical file is not rewritten).
7. **index**: ``selection.parquet``, ``splits.parquet``, ``samples.parquet``, then
   ``index.json`` (shard checksums, the resolved config) last; shards of an earlier build
   that the new index does not list are removed.

Video and audio bytes are copied as they are: nothing is decoded or re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from emoforge.errors import UserError
from emoforge.shards import format as fmt
from emoforge.shards.arrays import npz_bytes
from emoforge.shards.config import ShardsConfig
from emoforge.shards.manifest import Candidate, select_clips
from emoforge.shards.tario import bytes_sha256, write_shard

AUDIO_RATE_HZ = 16000


@dataclass
class PreparedClip:
    candidate: Candidate
    n_frames: int
    fps: float
    audio_samples: int
    velocity_deg_per_s: np.ndarray
    size_bytes: int

    @property
    def clip_id(self) -> str:
        return self.candidate.clip_id


@dataclass
class BuildReport:
    out_dir: Path
    shards: list[dict] = field(default_factory=list)
    selected: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict] = field(default_factory=dict)
    written: int = 0  # shards whose bytes changed


def write_json_atomic(path: Path, document) -> Path:
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(document, indent=1, allow_nan=False, sort_keys=False) + "\n")
    os.replace(partial, path)
    return path


def write_table_atomic(path: Path, rows: list[dict], columns: list[str]) -> Path:
    import pandas as pd

    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    pd.DataFrame(rows, columns=columns).to_parquet(partial, index=False)
    os.replace(partial, path)
    return path


def prepare_clip(candidate: Candidate) -> PreparedClip | str:
    """Check a clip's files agree with each other; a reason string when they do not."""
    import soundfile

    meta = candidate.meta
    try:
        with np.load(candidate.paths["labels.npz"], allow_pickle=False) as labels:
            names = set(labels.files)
            missing = [name for name in fmt.REQUIRED_LABEL_ARRAYS if name not in names]
            if missing:
                return f"labels lack {', '.join(missing)}"
            n_frames = int(meta.get("n_frames") or len(labels[fmt.VELOCITY]))
            for name in fmt.REQUIRED_LABEL_ARRAYS:
                if labels[name].shape[:1] != (n_frames,):
                    return f"labels {name} has {labels[name].shape[:1]} frames, the clip {n_frames}"
            velocity = labels[fmt.VELOCITY].astype(np.float64)
    except (OSError, ValueError, KeyError) as exc:
        return f"labels unreadable: {exc}"
    try:
        info = soundfile.info(str(candidate.paths["flac"]))
    except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        return f"audio unreadable: {exc}"
    if info.samplerate != AUDIO_RATE_HZ or info.channels != 1:
        return f"audio is {info.samplerate} Hz x {info.channels} channels, not 16 kHz mono"
    if n_frames < 2:
        return "clip has fewer than 2 frames"
    size = sum(candidate.paths[ext].stat().st_size for ext in ("mp4", "flac", "labels.npz"))
    return PreparedClip(candidate, n_frames, float(meta.get("fps") or 25), int(info.frames), velocity, size)


def resolve_splits(clips: list[PreparedClip], config: ShardsConfig) -> dict[str, dict]:
    """``clip_id -> split row`` (splits.py); with ``config.splits`` the saved assignment is kept."""
    from emoforge.shards.splits import assign_splits, load_identity_map, load_splits

    identity_map = load_identity_map(config.identities) if config.identities else None
    records = [
        {"clip_id": c.clip_id, "source_id": c.candidate.source_id, "identities": c.candidate.identities} for c in clips
    ]
    rows = assign_splits(records, config.val_fraction, config.test_fraction, config.split_seed, identity_map)
    if config.splits:
        saved = load_splits(config.splits)
        group_split: dict[str, set[str]] = {}
        for row in rows:
            if row["clip_id"] in saved:
                group_split.setdefault(row["group_id"], set()).add(saved[row["clip_id"]])
        for group, splits in group_split.items():
            if len(splits) > 1:
                raise UserError(
                    f"the saved splits put group {group} (sources sharing an identity) in {sorted(splits)}: "
                    "they would leak; reassign without splits="
                )
        for row in rows:  # a saved group keeps its split; new groups keep their drawn one
            if row["group_id"] in group_split:
                row["split"] = next(iter(group_split[row["group_id"]]))
    return {row["clip_id"]: row for row in rows}


def fit_or_load_buckets(clips: list[PreparedClip], split_rows: dict[str, dict], config: ShardsConfig):
    from emoforge.labeling.speed import SpeedBuckets, fit_speed_buckets

    if config.speed_buckets:
        return SpeedBuckets.load(config.speed_buckets)
    train = [c.velocity_deg_per_s for c in clips if split_rows[c.clip_id]["split"] == "train"]
    if not train:
        train = [c.velocity_deg_per_s for c in clips]
    return fit_speed_buckets(
        np.concatenate(train),
        d=config.speed_bucket_count,
        window_m=config.speed_window_m,
        min_width_deg_per_s=config.speed_bucket_min_width_deg_per_s,
    )


def pack(clips: list[PreparedClip], shard_size_mb: float, min_shards: int) -> list[list[PreparedClip]]:
    """Near-equal-size consecutive groups of clips in hash order (see the module doc, step 5)."""
    if not clips:
        return []
    ordered = sorted(clips, key=lambda c: hashlib.sha256(c.clip_id.encode()).hexdigest())
    total = float(sum(c.size_bytes for c in ordered))
    count = max(min_shards, int(round(total / (shard_size_mb * 1e6))), 1)
    count = min(count, len(ordered))
    per_shard = total / count
    groups: list[list[PreparedClip]] = [[] for _ in range(count)]
    before = 0.0
    for clip in ordered:
        middle = before + clip.size_bytes / 2
        groups[min(int(middle // per_shard), count - 1)].append(clip)
        before += clip.size_bytes
    return [g for g in groups if g]


def sample_members(clip: PreparedClip, split_row: dict, buckets, buckets_sha256: str, config: ShardsConfig) -> list[tuple[str, bytes]]:
    """One sample: video and audio bytes as curated, the per-frame labels plus speed vectors, metadata last."""
    from emoforge.labeling.speed import speed_vectors

    candidate = clip.candidate
    with np.load(candidate.paths["labels.npz"], allow_pickle=False) as data:
        labels = {}
        for name in data.files:
            array = data[name]
            if name.startswith(fmt.EXCLUDED_LABEL_PREFIXES) or array.shape[:1] != (clip.n_frames,):
                continue
            if name in fmt.EXCLUDED_LABEL_ARRAYS and not (config.include_mesh and name == "mesh_px"):
                continue
            labels[name] = array
    labels[fmt.SPEED_VECTORS] = speed_vectors(labels[fmt.VELOCITY], buckets).astype(np.float32)
    members = [
        (fmt.VIDEO_MEMBER, candidate.paths["mp4"].read_bytes()),
        (fmt.AUDIO_MEMBER, candidate.paths["flac"].read_bytes()),
        (fmt.LABELS_MEMBER, npz_bytes(labels)),
    ]
    clip_meta = candidate.meta
    provenance = clip_meta.get("provenance") or {}
    meta = {
        "format": fmt.SAMPLE_FORMAT,
        "version": fmt.SHARDS_VERSION,
        "key": candidate.clip_id,
        "clip_id": candidate.clip_id,
        "source_id": candidate.source_id,
        "identities": sorted(filter(None, split_row["identities"].split(";"))),
        "group_id": split_row["group_id"],
        "split": split_row["split"],
        "n_frames": clip.n_frames,
        "fps": clip.fps,
        "size_px": clip_meta.get("size_px"),
        "duration_s": clip.n_frames / clip.fps,
        "audio_sample_rate_hz": AUDIO_RATE_HZ,
        "audio_samples": clip.audio_samples,
        "license": provenance.get("license"),
        "provenance": provenance,
        "stats": clip_meta.get("stats") or {},
        "clip": clip_meta,
        "labels": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in sorted(labels.items())},
        "speed_buckets_sha256": buckets_sha256,
        "members": {name: {"sha256": bytes_sha256(data), "bytes": len(data)} for name, data in members},
    }
    members.append((fmt.META_MEMBER, json.dumps(meta, indent=None, allow_nan=False, sort_keys=True).encode()))
    return members


def build_shards(
    curated_dir,
    out_dir,
    config: ShardsConfig = ShardsConfig(),
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    report = BuildReport(out_dir)

    selection = select_clips(Path(curated_dir), config)  # 1
    prepared: list[PreparedClip] = []
    decisions = {d["clip_id"]: d for d in selection.decisions}
    for candidate in selection.selected:  # 2
        result = prepare_clip(candidate)
        if isinstance(result, str):
            decisions[candidate.clip_id].update(selected=False, reason=result)
        else:
            prepared.append(result)
    for decision in decisions.values():
        if not decision["selected"]:
            report.dropped[decision["reason"]] = report.dropped.get(decision["reason"], 0) + 1
    report.selected = len(prepared)
    say(f"{len(prepared)} clips selected, {sum(report.dropped.values())} dropped")
    if not prepared:
        raise UserError(f"no clip of {curated_dir} passes the selection: {report.dropped}")

    split_rows = resolve_splits(prepared, config)  # 3
    buckets = fit_or_load_buckets(prepared, split_rows, config)  # 4
    buckets_json = buckets.to_json() + "\n"
    buckets_sha = bytes_sha256(buckets_json.encode())
    (out_dir / fmt.SPEED_BUCKETS_FILE).parent.mkdir(parents=True, exist_ok=True)
    from emoforge.labeling.labels import write_text_atomic

    write_text_atomic(out_dir / fmt.SPEED_BUCKETS_FILE, buckets_json)

    sample_rows = []
    for split in fmt.SPLITS:  # 5, 6
        in_split = [c for c in prepared if split_rows[c.clip_id]["split"] == split]
        groups = pack(in_split, config.shard_size_mb, config.min_shards_per_split)
        for index, group in enumerate(groups):
            name = fmt.shard_name(split, index)
            samples = ((c.clip_id, sample_members(c, split_rows[c.clip_id], buckets, buckets_sha, config)) for c in group)
            path = out_dir / name
            before = path.stat().st_mtime_ns if path.exists() else None
            written = write_shard(path, samples)
            report.written += int(before is None or path.stat().st_mtime_ns != before)
            hours = sum(c.n_frames / c.fps for c in group) / 3600
            report.shards.append(
                {
                    "name": name,
                    "split": split,
                    "samples": len(group),
                    "bytes": written.size_bytes,
                    "sha256": written.sha256,
                    "hours": hours,
                    "keys": list(written.keys),
                }
            )
            for clip in group:
                row = split_rows[clip.clip_id]
                sample_rows.append(
                    {
                        "key": clip.clip_id,
                        "shard": name,
                        "split": split,
                        "source_id": row["source_id"],
                        "group_id": row["group_id"],
                        "identities": row["identities"],
                        "n_frames": clip.n_frames,
                        "duration_s": clip.n_frames / clip.fps,
                        "license": (clip.candidate.meta.get("provenance") or {}).get("license"),
                    }
                )
            say(f"{name}: {len(group)} samples, {written.size_bytes / 1e6:.1f} MB")
        report.splits[split] = {
            "shards": len(groups),
            "samples": len(in_split),
            "hours": sum(c.n_frames / c.fps for c in in_split) / 3600,
            "sources": len({c.candidate.source_id for c in in_split}),
            "groups": len({split_rows[c.clip_id]["group_id"] for c in in_split}),
        }

    write_table_atomic(out_dir / fmt.SELECTION_FILE, list(decisions.values()), ["clip_id", "source_id", "selected", "reason"])  # 7
    write_table_atomic(
        out_dir / fmt.SPLITS_FILE,
        [split_rows[c.clip_id] for c in sorted(prepared, key=lambda c: c.clip_id)],
        ["clip_id", "source_id", "identities", "group_id", "split"],
    )
    write_table_atomic(
        out_dir / fmt.SAMPLES_FILE,
        sample_rows,
        ["key", "shard", "split", "source_id", "group_id", "identities", "n_frames", "duration_s", "license"],
    )
    index = {
        "format": fmt.SHARDS_FORMAT,
        "version": fmt.SHARDS_VERSION,
        "config": config.to_dict(),
        "curated_dir": str(Path(curated_dir).resolve()),
        "speed_buckets": {"file": fmt.SPEED_BUCKETS_FILE, "sha256": buckets_sha},
        "splits": report.splits,
        "dropped": report.dropped,
        "shards": report.shards,
    }
    write_json_atomic(out_dir / fmt.INDEX_FILE, index)
    listed = {s["name"] for s in report.shards}
    for path in out_dir.iterdir():
        if fmt.SHARD_NAME_RE.match(path.name) and path.name not in listed:
            path.unlink()  # a shard of an earlier build
    return report


def load_index(shards_dir) -> dict:
    path = Path(shards_dir) / fmt.INDEX_FILE
    if not path.is_file():
        raise UserError(f"no {fmt.INDEX_FILE} in {shards_dir}: not a shards folder (run 'emoforge shards build')")
    try:
        index = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if index.get("format") != fmt.SHARDS_FORMAT or index.get("version") != fmt.SHARDS_VERSION:
        raise UserError(f"{path} is format {index.get('format')!r} version {index.get('version')!r}, not {fmt.SHARDS_FORMAT} {fmt.SHARDS_VERSION}")
    return index

