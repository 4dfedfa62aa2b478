"""Write -> read round trip of every member; deterministic, atomic, checksummed shards."""

from __future__ import annotations

import json
import tarfile

import numpy as np

from emoforge.labeling.speed import SpeedBuckets, speed_vectors
from emoforge.shards import format as fmt
from emoforge.shards.arrays import load_npz
from emoforge.shards.config import ShardsConfig
from emoforge.shards.tario import file_sha256, iter_tar_samples
from emoforge.shards.writer import build_shards, load_index


def test_every_member_round_trips(curated, built):
    out, report = built
    clips = curated / "clips"
    buckets = SpeedBuckets.load(out / fmt.SPEED_BUCKETS_FILE)
    seen = set()
    for entry in load_index(out)["shards"]:
        for raw in iter_tar_samples(out / entry["name"]):
            seen.add(raw.key)
            assert raw.members["mp4"] == (clips / f"{raw.key}.mp4").read_bytes()
            assert raw.members["flac"] == (clips / f"{raw.key}.flac").read_bytes()
            labels = load_npz(raw.members["labels.npz"])
            with np.load(clips / f"{raw.key}.labels.npz") as source:
                for name in source.files:
                    if name.startswith("det_") or name == "mesh_px":
                        assert name not in labels  # per-detection / heavy arrays are left out
                    else:
                        np.testing.assert_array_equal(labels[name], source[name])
                np.testing.assert_allclose(
                    labels["speed_vectors"], speed_vectors(source["velocity_deg_per_s"], buckets).astype(np.float32)
                )
            meta = raw.meta
            clip_meta = json.loads((clips / f"{raw.key}.json").read_text())
            assert meta["clip"] == clip_meta
            assert meta["source_id"] == clip_meta["source_id"]
            assert meta["license"] == clip_meta["provenance"]["license"]
            assert meta["stats"] == clip_meta["stats"]
            assert meta["n_frames"] == clip_meta["n_frames"] == len(labels["box_xyxy_px"])
            assert meta["split"] == entry["split"]
            assert set(meta["members"]) == {"mp4", "flac", "labels.npz"}
    assert seen == {p.name[: -len(".json")] for p in clips.glob("*.json")}
    assert report.selected == 12


def test_samples_stored_together_json_last_and_checksummed(built):
    out, _ = built
    index = load_index(out)
    assert [s["name"] for s in index["shards"]] == sorted(
        (s["name"] for s in index["shards"]), key=lambda n: (fmt.SPLITS.index(n.split("-")[0]), n)
    )
    for entry in index["shards"]:
        assert fmt.SHARD_NAME_RE.match(entry["name"])
        assert file_sha256(out / entry["name"]) == entry["sha256"]
        with tarfile.open(out / entry["name"]) as tar:
            names = tar.getnames()
        keys = [n.split(".", 1)[0] for n in names]
        # each key's members are one contiguous run, JSON last
        runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert len(runs) == len(set(runs)) == len(entry["keys"])
        for key in runs:
            members = [n.split(".", 1)[1] for n in names if n.startswith(key + ".")]
            assert members == ["mp4", "flac", "labels.npz", "json"]
    assert not list(out.glob(".*partial"))


def test_rebuild_is_byte_identical_and_removes_stale_shards(curated, built, tmp_path):
    out, first = built
    again = build_shards(curated, tmp_path / "again", ShardsConfig(val_fraction=0.2, test_fraction=0.2, shard_size_mb=0.001))
    assert [(s["name"], s["sha256"]) for s in again.shards] == [(s["name"], s["sha256"]) for s in first.shards]
    rerun = build_shards(curated, tmp_path / "again", ShardsConfig(val_fraction=0.2, test_fraction=0.2, shard_size_mb=0.001))
    assert rerun.written == 0  # identical shards are not rewritten
    bigger = build_shards(curated, tmp_path / "again", ShardsConfig(val_fraction=0.2, test_fraction=0.2, shard_size_mb=100))
    assert sorted(p.name for p in (tmp_path / "again").glob("*.tar")) == sorted(s["name"] for s in bigger.shards)
    assert {s["split"] for s in bigger.shards} == {"train", "val", "test"} and len(bigger.shards) == 3


def test_shards_are_size_balanced(curated, tmp_path):
    report = build_shards(curated, tmp_path / "b", ShardsConfig(val_fraction=0.0, test_fraction=0.0, shard_size_mb=0.25))
    sizes = [s["bytes"] for s in report.shards]
    assert len(sizes) >= 2
    per_sample = max(s["bytes"] / s["samples"] for s in report.shards)
    assert max(sizes) - min(sizes) <= 2 * per_sample
    assert sum(s["samples"] for s in report.shards) == 12
