"""Small synthetic curated corpora (64 px clips, docs/clips.md) and shards built from them."""

from __future__ import annotations

import shutil

import pytest

from emoforge.shards.config import ShardsConfig
from emoforge.shards.synthetic import make_curated_corpus
from emoforge.shards.writer import build_shards

# src1 and src2 show the same person: they must share a split.
IDENTITIES = {"src1": "alice", "src2": "alice"}


@pytest.fixture(scope="session")
def curated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curated")
    make_curated_corpus(folder, sources=6, clips_per_source=2, n_frames=(20, 30), size_px=64, seed=0, identities=IDENTITIES)
    return folder


@pytest.fixture(scope="session")
def built(curated, tmp_path_factory):
    """One sample per shard (tiny shard size): 12 shards over three splits."""
    out = tmp_path_factory.mktemp("shards")
    report = build_shards(curated, out, ShardsConfig(val_fraction=0.2, test_fraction=0.2, shard_size_mb=0.001))
    return out, report


@pytest.fixture
def built_copy(built, tmp_path):
    """A private copy of the built shards, for tests that damage them."""
    out = tmp_path / "shards"
    shutil.copytree(built[0], out)
    return out
