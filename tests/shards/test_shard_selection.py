"""Manifest-driven rebuilds: new thresholds and annotators' rejections, without re-running labeling."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from emoforge.errors import UserError
from emoforge.shards import format as fmt
from emoforge.shards.config import ShardsConfig, apply_overrides
from emoforge.shards.manifest import load_rejections
from emoforge.shards.writer import build_shards, load_index


def _keys(out) -> set[str]:
    return {k for s in load_index(out)["shards"] for k in s["keys"]}


def test_thresholds_and_rejections_rebuild_from_files(curated, tmp_path):
    label_files = sorted((curated / "clips").glob("*.labels.npz"))
    stamps = [p.stat().st_mtime_ns for p in label_files]
    speech = {
        p.name[: -len(".json")]: json.loads(p.read_text())["stats"]["speech_fraction"] for p in (curated / "clips").glob("*.json")
    }
    limit = sorted(speech.values())[6]
    ids = sorted(speech)
    rejections = tmp_path / "review.csv"
    pd.DataFrame({"clip_id": [ids[0], ids[5], ids[9]], "decision": ["reject", "accept", "rejected"]}).to_csv(rejections, index=False)
    rejected = load_rejections(rejections)
    assert rejected == {ids[0], ids[9]}
    config = ShardsConfig(min_speech_fraction=limit, exclude=str(rejections), shard_size_mb=100)
    report = build_shards(curated, tmp_path / "out", config)
    expected = {k for k, v in speech.items() if v >= limit} - rejected
    assert _keys(tmp_path / "out") == expected
    decisions = pd.read_parquet(tmp_path / "out" / fmt.SELECTION_FILE).set_index("clip_id")
    for clip_id in rejected:
        assert decisions.loc[clip_id, "reason"] == "rejected by an annotator"
    assert any("speech_fraction" in str(r) for r in decisions.reason)
    assert sum(report.dropped.values()) == 12 - len(expected)
    assert [p.stat().st_mtime_ns for p in label_files] == stamps  # labels only read
    assert load_index(tmp_path / "out")["config"]["min_speech_fraction"] == limit


def test_broken_clips_are_dropped_with_reasons(curated, tmp_path):
    copy = tmp_path / "curated"
    shutil.copytree(curated, copy)
    clips = copy / "clips"
    ids = sorted(p.name[: -len(".json")] for p in clips.glob("*.json"))
    (clips / f"{ids[0]}.flac").unlink()
    meta_path = clips / f"{ids[-1]}.json"
    meta = json.loads(meta_path.read_text())
    meta["n_frames"] = 99
    meta_path.write_text(json.dumps(meta))
    report = build_shards(copy, tmp_path / "out", ShardsConfig(shard_size_mb=100))
    assert report.selected == 10
    reasons = pd.read_parquet(tmp_path / "out" / fmt.SELECTION_FILE).set_index("clip_id")["reason"]
    assert reasons[ids[0]] == "missing clip files: flac"
    assert "frames" in reasons[ids[-1]]


def test_scans_clip_jsons_without_a_manifest(curated, tmp_path):
    copy = tmp_path / "curated"
    shutil.copytree(curated, copy)
    (copy / "manifest.parquet").unlink()
    report = build_shards(copy, tmp_path / "out", ShardsConfig(shard_size_mb=100))
    assert report.selected == 12


def test_overrides_are_type_checked():
    config = apply_overrides(ShardsConfig(), ["min_speech_fraction=0.4", "include_mesh=yes", "exclude=none"])
    assert config.min_speech_fraction == 0.4 and config.include_mesh is True and config.exclude is None
    for bad in (["nope=1"], ["shard_size_mb=big"], ["val_fraction=0.7", "test_fraction=0.5"]):
        with pytest.raises(UserError):
            apply_overrides(ShardsConfig(), bad)
