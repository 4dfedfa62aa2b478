"""Run configurations shared by the trainer tests (a module of its own: several folders have a conftest)."""

from __future__ import annotations


def tiny_run_config(shards, *settings: str, stage: int = 2):
    """The `tiny` preset for the test shards: speed buckets as the shards have them, small and fast."""
    import json

    from emoforge.training.run_config import TINY_RUN, apply_overrides, merge

    buckets = json.loads((shards / "speed_buckets.json").read_text())
    config = apply_overrides(TINY_RUN, [
        f"model.speed.num_buckets={len(buckets['centres_deg_per_s'])}", "train.batch_size=2", "data.num_workers=0",
        "data.shuffle_buffer=4", "train.log_every=1", "train.validate_every=0", "train.checkpoint_every=100",
        *settings])
    return merge(config, {"train": {"stage": stage}})
