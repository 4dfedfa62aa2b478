"""Corpus statistics of a shards folder, as ``stats.json`` and PNG plots.

Reads only each sample's metadata and labels (the video and audio members are skipped),
from the shards themselves, so the numbers describe what training will see:

- totals and per split: clips, hours, frames, sources, identity groups, shards;
- per frame: speed bucket (the shards' ``speed_buckets.json``), yaw, pitch, roll (deg),
  face size (box width in pixels, NaN boxes left out);
- per clip: length (s), speech ratio (share of frames with speech), licence.

Histograms have fixed edges (``{"edges": [...], "counts": [...]}``), per split and all.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from emoforge.shards import format as fmt
from emoforge.shards.tario import iter_tar_samples

HISTOGRAM_EDGES = {
    "yaw_deg": np.arange(-90, 91, 5.0),
    "pitch_deg": np.arange(-90, 91, 5.0),
    "roll_deg": np.arange(-90, 91, 5.0),
    "face_width_px": np.arange(0, 521, 16.0),
    "clip_length_s": np.arange(0, 30.5, 0.5),
    "speech_ratio": np.linspace(0, 1, 21),
}


def _histogram(values: np.ndarray, edges: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    clipped = np.clip(values, edges[0], edges[-1])  # outliers land in the outer bins
    counts, _ = np.histogram(clipped, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], "n": int(values.size)}


def corpus_stats(shards_dir) -> dict:
    from emoforge.labeling.speed import SpeedBuckets, bucket_index
    from emoforge.shards.writer import load_index

    folder = Path(shards_dir)
    index = load_index(folder)
    buckets = SpeedBuckets.load(folder / index["speed_buckets"]["file"])
    values: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    licences: dict[str, Counter] = defaultdict(Counter)
    per_split: dict[str, dict] = defaultdict(lambda: {"clips": 0, "frames": 0, "seconds": 0.0, "sources": set(), "groups": set(), "shards": 0})
    buckets_count: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(buckets.d, dtype=np.int64))
    unreadable = []
    wanted = {fmt.META_MEMBER, fmt.LABELS_MEMBER}

    def on_problem(shard, key, reason):
        unreadable.append(f"{shard}{f' ({key})' if key else ''}: {reason}")

    from emoforge.shards.arrays import load_npz

    for entry in index["shards"]:
        split = entry["split"]
        per_split[split]["shards"] += 1
        for raw in iter_tar_samples(folder / entry["name"], on_problem, check_checksums=False, select=wanted.__contains__):
            meta = raw.meta
            labels = load_npz(raw.members[fmt.LABELS_MEMBER])
            row = per_split[split]
            row["clips"] += 1
            row["frames"] += int(meta["n_frames"])
            row["seconds"] += float(meta["duration_s"])
            row["sources"].add(meta["source_id"])
            row["groups"].add(meta["group_id"])
            licences[split][str(meta.get("license"))] += 1
            ypr = labels[fmt.POSE]
            box = labels[fmt.BOX]
            for target in (split, "all"):
                values[target]["yaw_deg"].append(ypr[:, 0])
                values[target]["pitch_deg"].append(ypr[:, 1])
                values[target]["roll_deg"].append(ypr[:, 2])
                values[target]["face_width_px"].append(box[:, 2] - box[:, 0])
                values[target]["clip_length_s"].append([meta["duration_s"]])
                values[target]["speech_ratio"].append([float(np.mean(labels[fmt.SPEECH]))])
                index_of = bucket_index(labels[fmt.VELOCITY], buckets)
                buckets_count[target] += np.bincount(index_of[index_of >= 0], minlength=buckets.d)
    licences["all"] = sum(licences.values(), Counter())
    splits = {}
    for split, row in per_split.items():
        splits[split] = {
            "clips": row["clips"],
            "hours": row["seconds"] / 3600,
            "frames": row["frames"],
            "sources": len(row["sources"]),
            "identity_groups": len(row["groups"]),
            "shards": row["shards"],
        }
    total_seconds = sum(r["seconds"] for r in per_split.values())
    distributions = {}
    for target, series in values.items():
        distributions[target] = {name: _histogram(np.concatenate([np.ravel(v) for v in parts]), HISTOGRAM_EDGES[name]) for name, parts in series.items()}
        distributions[target]["speed_bucket"] = {
            "edges_deg_per_s": list(buckets.edges_deg_per_s),
            "counts": [int(c) for c in buckets_count[target]],
        }
        distributions[target]["licence"] = dict(sorted(licences[target].items()))
    return {
        "clips": sum(r["clips"] for r in per_split.values()),
        "hours": total_seconds / 3600,
        "frames": sum(r["frames"] for r in per_split.values()),
        "splits": splits,
        "distributions": distributions,
        "unreadable": unreadable,
    }


def write_stats(shards_dir, out_dir) -> dict[str, Path]:
    """``stats.json`` and one PNG per distribution (all splits overlaid) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoforge.shards.writer import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = corpus_stats(shards_dir)
    written = {"json": write_json_atomic(out_dir / "stats.json", stats)}
    splits = [s for s in fmt.SPLITS if s in stats["distributions"]]
    names = [*HISTOGRAM_EDGES, "speed_bucket", "licence"]
    for name in names:
        figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
        for offset, split in enumerate(splits):
            dist = stats["distributions"][split][name]
            if name == "licence":
                labels = sorted(stats["distributions"]["all"]["licence"])
                heights = [dist.get(label, 0) for label in labels]
                positions = np.arange(len(labels)) + offset * 0.8 / len(splits)
                axes.bar(positions, heights, width=0.8 / len(splits), label=split)
                axes.set_xticks(np.arange(len(labels)) + 0.4 - 0.4 / len(splits), labels, rotation=20, fontsize=7)
            elif name == "speed_bucket":
                positions = np.arange(len(dist["counts"])) + offset * 0.8 / len(splits)
                axes.bar(positions, dist["counts"], width=0.8 / len(splits), label=split)
                axes.set_xlabel("speed bucket (index)")
            else:
                edges = np.asarray(dist["edges"])
                axes.stairs(dist["counts"], edges, label=split)
                axes.set_xlabel(name)
        axes.set_ylabel("frames" if name in ("yaw_deg", "pitch_deg", "roll_deg", "face_width_px", "speed_bucket") else "clips")
        axes.set_title(name)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = out_dir / f"{name}.png"
        partial = path.with_name(f".{path.name}.partial.png")
        figure.savefig(partial)
        plt.close(figure)
        partial.replace(path)
        written[name] = path
    return written


def summary_lines(stats: dict) -> list[str]:
    lines = [f"{stats['clips']} clips, {stats['hours']:.3f} h, {stats['frames']} frames"]
    for split, row in stats["splits"].items():
        lines.append(f"  {split}: {row['clips']} clips, {row['hours']:.3f} h, {row['sources']} sources, {row['identity_groups']} identity groups, {row['shards']} shards")
    if stats["unreadable"]:
        lines.append(f"  {len(stats['unreadable'])} unreadable: {stats['unreadable'][:3]}")
    return lines


def dumps(stats: dict) -> str:
    return json.dumps(stats, indent=1)
