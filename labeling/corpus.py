"""Corpus-level label artifacts: the run's configuration, the speed buckets, Table 2 statistics.

The speed buckets are fitted to the smoothed ``velocity_deg_per_s`` of every finished
video in a label folder and saved there as ``speed_buckets.json``; shards and the
trainer load that file, so training uses exactly the buckets the corpus was cut with.
Refitting (other ``d``, ``m`` or method) reads only the label files.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emoforge.errors import UserError
from emoforge.labeling.labels import find_labels, read_labels, write_text_atomic
from emoforge.labeling.speed import CORPUS_MIN_WIDTH_DEG_PER_S, SpeedBuckets, fit_speed_buckets
from emoforge.labeling.stats import SetVelocityStats, set_velocity_stats

BUCKETS_FILE = "speed_buckets.json"
RUN_FILE = "label_run.json"


def write_run_config(out_dir, config, d: int, window_m: int) -> Path:
    document = {"config": asdict(config), "speed_buckets": {"d": d, "window_m": window_m}}
    return write_text_atomic(Path(out_dir) / RUN_FILE, json.dumps(document, indent=1) + "\n")


def shot_velocities(labels_dir, key: str = "velocity_deg_per_s") -> list[np.ndarray]:
    """One array per shot of every finished video (shots are the clips' parents)."""
    out = []
    for path in find_labels(labels_dir):
        labels = read_labels(path)
        if not labels.ok:
            continue
        velocity, shot_id = labels.arrays[key].astype(np.float64), labels.arrays["shot_id"]
        for shot in np.unique(shot_id):
            values = velocity[shot_id == shot]
            if np.isfinite(values).sum() >= 2:
                out.append(values)
    return out


def fit_corpus_buckets(labels_dir, d: int = 8, window_m: int = 2, method: str = "quantile",
                       min_width_deg_per_s: float = CORPUS_MIN_WIDTH_DEG_PER_S) -> SpeedBuckets:
    velocities = shot_velocities(labels_dir)
    if not velocities:
        raise UserError(f"no labelled video with head pose in {labels_dir}")
    buckets = fit_speed_buckets(np.concatenate(velocities), d=d, window_m=window_m, method=method,
                                min_width_deg_per_s=min_width_deg_per_s)
    buckets.save(Path(labels_dir) / BUCKETS_FILE)
    return buckets


def corpus_velocity_stats(labels_dir) -> dict[str, SetVelocityStats]:
    """Table 2 over the corpus' shots, in degrees per frame (the paper's unit) and per second."""
    stats = {}
    for unit, key in (("deg_per_frame", "velocity_deg_per_frame"), ("deg_per_s", "velocity_deg_per_s")):
        velocities = shot_velocities(labels_dir, key)
        if len(velocities) < 1:
            raise UserError(f"no labelled shot with head pose in {labels_dir}")
        stats[unit] = set_velocity_stats(velocities)
    return stats
