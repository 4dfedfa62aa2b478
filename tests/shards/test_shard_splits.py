"""Splits by source and identity: no source and no face identity in two splits."""

from __future__ import annotations

import pandas as pd
import pytest

from emoforge.errors import UserError
from emoforge.shards import format as fmt
from emoforge.shards.config import ShardsConfig
from emoforge.shards.splits import assign_splits, group_sources, leakage, load_identity_map
from emoforge.shards.writer import build_shards


def _clips(n_sources: int, per_source: int = 3, identities: dict | None = None) -> list[dict]:
    return [
        {"clip_id": f"s{s:03d}-{c}", "source_id": f"s{s:03d}", "identities": tuple((identities or {}).get(f"s{s:03d}", ()))}
        for s in range(n_sources)
        for c in range(per_source)
    ]


def test_shared_identity_groups_sources_transitively():
    identities = {"s001": ["ann"], "s002": ["ann", "bob"], "s003": ["bob"], "s004": ["cy"]}
    groups = group_sources(_clips(6, 1, identities))
    assert groups["s001"] == groups["s002"] == groups["s003"] == "s001"
    assert groups["s004"] == "s004" and groups["s000"] == "s000" and groups["s005"] == "s005"


def test_no_leakage_on_a_large_random_corpus():
    import random

    rng = random.Random(0)
    people = [f"p{i}" for i in range(60)]
    identities = {f"s{s:03d}": rng.sample(people, rng.choice([0, 1, 1, 2])) for s in range(300)}
    rows = assign_splits(_clips(300, 2, identities), val_fraction=0.1, test_fraction=0.1, seed=3)
    assert leakage(rows) == {"source": {}, "identity": {}}
    counts = pd.Series([r["split"] for r in rows]).value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    # every row of a group has one split
    assert pd.DataFrame(rows).groupby("group_id")["split"].nunique().max() == 1


def test_leakage_detects_a_leak():
    rows = [
        {"clip_id": "a", "source_id": "s1", "identities": "ann", "split": "train"},
        {"clip_id": "b", "source_id": "s1", "identities": "", "split": "val"},
        {"clip_id": "c", "source_id": "s2", "identities": "ann", "split": "test"},
    ]
    report = leakage(rows)
    assert report["source"] == {"s1": ["train", "val"]}
    assert report["identity"] == {"ann": ["test", "train"]}


def test_assignment_is_deterministic_and_stable_when_sources_are_added():
    small = {r["source_id"]: r["split"] for r in assign_splits(_clips(50), 0.1, 0.1, seed=1)}
    large = {r["source_id"]: r["split"] for r in assign_splits(_clips(80), 0.1, 0.1, seed=1)}
    assert all(large[s] == split for s, split in small.items())
    other_seed = {r["source_id"]: r["split"] for r in assign_splits(_clips(80), 0.1, 0.1, seed=2)}
    assert other_seed != large


def test_small_corpus_gets_non_empty_val_and_test():
    rows = assign_splits(_clips(3, 1), 0.05, 0.05)
    assert sorted(r["split"] for r in rows) == ["test", "train", "val"]


def test_identity_mapping_file_merges_sources(tmp_path):
    mapping = tmp_path / "ids.csv"
    pd.DataFrame({"source_id": ["s000", "s007", "s007"], "identity": ["zed", "zed", "yo"]}).to_csv(mapping, index=False)
    loaded = load_identity_map(mapping)
    assert loaded == {"s000": {"zed"}, "s007": {"zed", "yo"}}
    rows = assign_splits(_clips(40), 0.3, 0.3, seed=0, identity_map=loaded)
    assert len({r["split"] for r in rows if r["source_id"] in ("s000", "s007")}) == 1
    assert leakage(rows) == {"source": {}, "identity": {}}
    bad = tmp_path / "bad.csv"
    bad.write_text("source,who\nx,y\n")
    with pytest.raises(UserError):
        load_identity_map(bad)


def test_built_shards_do_not_leak(built):
    out, _ = built
    samples = pd.read_parquet(out / fmt.SAMPLES_FILE)
    assert leakage(samples.to_dict("records")) == {"source": {}, "identity": {}}
    # src1 and src2 share the identity "alice" in their clip JSON
    assert samples[samples.source_id.isin(["src1", "src2"])].split.nunique() == 1
    assert set(samples.split) == {"train", "val", "test"}


def test_reusing_saved_splits_keeps_assignment(curated, built, tmp_path):
    out, _ = built
    saved = pd.read_parquet(out / fmt.SPLITS_FILE)
    flipped = saved.copy()
    flipped["split"] = flipped["split"].map({"train": "test", "val": "train", "test": "val"})
    flipped.to_parquet(tmp_path / "splits.parquet")
    report = build_shards(curated, tmp_path / "re", ShardsConfig(splits=str(tmp_path / "splits.parquet"), shard_size_mb=100))
    again = pd.read_parquet(tmp_path / "re" / fmt.SPLITS_FILE).set_index("clip_id")["split"]
    assert again.to_dict() == flipped.set_index("clip_id")["split"].to_dict()
    assert report.splits["test"]["samples"] == int((saved.split == "train").sum())
    leaky = flipped.copy()
    leaky.loc[leaky.source_id == "src1", "split"] = "train"
    leaky.loc[leaky.source_id == "src2", "split"] = "test"
    leaky.to_parquet(tmp_path / "leaky.parquet")
    with pytest.raises(UserError, match="leak"):
        build_shards(curated, tmp_path / "re2", ShardsConfig(splits=str(tmp_path / "leaky.parquet")))
