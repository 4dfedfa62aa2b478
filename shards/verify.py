"""Verify a shards folder: every tar readable, every sample complete and decodable, checksums match.

Per shard (a damaged shard is reported by name; nothing here raises on damage):

- the file exists, its size and SHA-256 match ``index.json``;
- the tar reads to its end; every sample has every required member, and every member's
  SHA-256 matches the sample's metadata;
- the samples are exactly the keys the index lists, each once;
- each sample decodes: the metadata JSON, the labels (every array has ``n_frames``
  rows, speed vectors included), the FLAC (``audio_samples`` samples at 16 kHz), the
  cached features if present (frame counts), and — unless ``decode_video=False`` —
  every video frame (count ``n_frames``, size ``size_px``).

Across shards: no source video and no face identity in two splits (splits.py).
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoforge.shards import format as fmt
from emoforge.shards.tario import file_sha256, iter_tar_samples


@dataclass
class ShardCheck:
    name: str
    split: str = ""
    samples_ok: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"name": self.name, "split": self.split, "ok": self.ok, "samples_ok": self.samples_ok, "problems": self.problems}


@dataclass
class VerifyReport:
    shards: list[ShardCheck] = field(default_factory=list)
    leakage: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # folder-level

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.shards) and not any(self.leakage.values())

    @property
    def bad_shards(self) -> list[str]:
        return [s.name for s in self.shards if not s.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "bad_shards": self.bad_shards,
            "problems": self.problems,
            "leakage": self.leakage,
            "shards": [s.to_dict() for s in self.shards],
        }


def check_sample_decodes(members: dict[str, bytes], decode_video: bool = True) -> str | None:
    """The first reason a complete sample cannot be used, or None."""
    import json

    import soundfile

    from emoforge.shards.arrays import load_npy, load_npz

    try:
        meta = json.loads(members[fmt.META_MEMBER])
    except ValueError as exc:
        return f"metadata JSON unreadable: {exc}"
    if meta.get("format") != fmt.SAMPLE_FORMAT:
        return f"metadata format {meta.get('format')!r}"
    n_frames = int(meta["n_frames"])
    try:
        labels = load_npz(members[fmt.LABELS_MEMBER])
    except Exception as exc:  # zipfile/numpy raise many types on damaged bytes
        return f"labels unreadable: {type(exc).__name__}: {exc}"
    for name in (*fmt.REQUIRED_LABEL_ARRAYS, fmt.SPEED_VECTORS):
        if name not in labels:
            return f"labels lack {name}"
    for name, array in labels.items():
        if array.shape[:1] != (n_frames,):
            return f"labels {name} has shape {array.shape}, not {n_frames} frames"
    try:
        samples, rate = soundfile.read(io.BytesIO(members[fmt.AUDIO_MEMBER]), dtype="float32")
    except (RuntimeError, OSError) as exc:
        return f"audio undecodable: {exc}"
    if rate != meta.get("audio_sample_rate_hz", 16000) or len(samples) != meta.get("audio_samples", len(samples)):
        return f"audio is {len(samples)} samples at {rate} Hz, metadata says {meta.get('audio_samples')} at {meta.get('audio_sample_rate_hz')}"
    for member in (fmt.LATENTS_MEMBER, fmt.AUDIO_FEATURES_MEMBER):
        if member in members:
            try:
                array = load_npy(members[member])
            except Exception as exc:
                return f"{member} unreadable: {exc}"
            if array.shape[:1] != (n_frames,) or not np.isfinite(array).all():
                return f"{member} has shape {array.shape} or non-finite values"
    if decode_video:
        return _video_problem(members[fmt.VIDEO_MEMBER], n_frames, meta.get("size_px"))
    return None


def _video_problem(data: bytes, n_frames: int, size_px) -> str | None:
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                return "video has no video stream"
            stream = container.streams.video[0]
            count = 0
            for frame in container.decode(stream):
                if size_px and (frame.width, frame.height) != (size_px, size_px):
                    return f"video frame is {frame.width}x{frame.height}, not {size_px}x{size_px}"
                count += 1
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"video undecodable: {exc}"
    if count != n_frames:
        return f"video has {count} frames, metadata says {n_frames}"
    return None


def verify_shard(path: Path, entry: dict | None, decode_video: bool = True) -> ShardCheck:
    path = Path(path)
    check = ShardCheck(path.name, (entry or {}).get("split", ""))
    if not path.is_file():
        check.problems.append("missing file")
        return check
    if entry is None:
        check.problems.append("not listed in index.json")
    else:
        if path.stat().st_size != entry["bytes"]:
            check.problems.append(f"size {path.stat().st_size} bytes, index says {entry['bytes']}")
        elif file_sha256(path) != entry["sha256"]:
            check.problems.append("SHA-256 differs from index.json")

    def on_problem(shard: str, key: str | None, reason: str) -> None:
        check.problems.append(f"{key}: {reason}" if key else reason)

    seen = []
    for raw in iter_tar_samples(path, on_problem, check_checksums=True):
        seen.append(raw.key)
        reason = check_sample_decodes(raw.members, decode_video)
        if reason:
            check.problems.append(f"{raw.key}: {reason}")
        else:
            check.samples_ok += 1
    if entry is not None:
        expected = entry["keys"]
        missing = sorted(set(expected) - set(seen))
        extra = sorted(set(seen) - set(expected))
        if missing:
            check.problems.append(f"{len(missing)} indexed samples not found intact: {', '.join(missing[:5])}")
        if extra:
            check.problems.append(f"samples not in the index: {', '.join(extra[:5])}")
        if len(seen) != len(set(seen)):
            check.problems.append("a key occurs twice")
    return check


def _verify_one(args) -> ShardCheck:
    return verify_shard(*args)


def verify_shards(shards_dir, decode_video: bool = True, workers: int = 1) -> VerifyReport:
    import pandas as pd

    from emoforge.shards.splits import leakage
    from emoforge.shards.writer import load_index

    folder = Path(shards_dir)
    index = load_index(folder)
    report = VerifyReport()
    entries = {s["name"]: s for s in index["shards"]}
    on_disk = {p.name for p in folder.iterdir() if fmt.SHARD_NAME_RE.match(p.name)}
    jobs = [(folder / name, entries.get(name), decode_video) for name in sorted(set(entries) | on_disk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            report.shards = list(pool.map(_verify_one, jobs))
    else:
        report.shards = [_verify_one(job) for job in jobs]
    samples_path = folder / fmt.SAMPLES_FILE
    if samples_path.is_file():
        rows = pd.read_parquet(samples_path).to_dict("records")
        report.leakage = leakage(rows)
    else:
        report.problems.append(f"no {fmt.SAMPLES_FILE}: split leakage not checked")
    buckets = folder / index["speed_buckets"]["file"]
    if not buckets.is_file() or file_sha256(buckets) != index["speed_buckets"]["sha256"]:
        report.problems.append(f"{buckets.name} missing or not the one the shards were built with")
    return report
