"""Shard build configuration: one frozen dataclass; ``key=value`` overrides map onto it.

The resolved configuration is written into ``index.json`` beside the shards, so a
build can be repeated exactly (same inputs + same config = byte-identical shards).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

from emoforge.errors import UserError


@dataclass(frozen=True)
class ShardsConfig:
    # Selection: thresholds on each clip's JSON ``stats`` (None = no limit). A rebuild with new
    # thresholds re-reads clips and labels, never the source videos.
    min_duration_s: float = 0.0
    max_duration_s: float | None = None
    min_speech_fraction: float | None = None
    min_median_face_width_px: float | None = None
    max_mean_abs_yaw_deg: float | None = None
    max_mean_velocity_deg_per_s: float | None = None
    licenses: str | None = None  # comma-separated allow-list of provenance licences
    exclude: str | None = None  # annotators' rejections: .txt/.csv/.parquet/.json of clip ids
    # Splits (splits.py): by source and face identity, never straddling.
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0
    identities: str | None = None  # CSV/parquet mapping source_id -> identity
    splits: str | None = None  # a splits.parquet to reuse instead of assigning
    # Shards.
    shard_size_mb: float = 512.0
    min_shards_per_split: int = 1
    include_mesh: bool = False
    # Speed buckets (emoforge.labeling.speed): a saved file, else fitted on the train split.
    speed_buckets: str | None = None
    speed_bucket_count: int = 8  # at most; narrower buckets merge (speed_bucket_min_width_deg_per_s)
    speed_bucket_min_width_deg_per_s: float = 10.0  # labeling.speed.CORPUS_MIN_WIDTH_DEG_PER_S
    speed_window_m: int = 2

    def __post_init__(self):
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise UserError("val_fraction and test_fraction must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise UserError("val_fraction + test_fraction must leave room for a train split")
        if self.shard_size_mb <= 0:
            raise UserError("shard_size_mb must be positive")
        if self.min_shards_per_split < 1:
            raise UserError("min_shards_per_split must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def license_set(self) -> set[str] | None:
        if not self.licenses:
            return None
        return {item.strip() for item in self.licenses.split(",") if item.strip()}


def apply_overrides(config, overrides: list[str]):
    """``["min_speech_fraction=0.3", "speed_buckets=none"]`` onto a frozen dataclass, type-checked."""
    hints = typing.get_type_hints(type(config))
    changes = {}
    for item in overrides:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or name not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(config))
            raise UserError(f"unknown setting {item!r}; settings are key=value with key one of: {known}")
        changes[name] = _parse(name, text.strip(), hints[name])
    return dataclasses.replace(config, **changes)


def _parse(name: str, text: str, hint):
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    if type(None) in options and text.lower() in ("none", "null", ""):
        return None
    for kind in options:
        if kind is type(None):
            continue
        try:
            if kind is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            return kind(text)
        except ValueError:
            continue
    raise UserError(f"setting {name}: cannot read {text!r} as {hint}")
