"""Cached features are added without touching the video; the dataset serves them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoforge.shards import format as fmt
from emoforge.shards.arrays import load_npy
from emoforge.shards.dataset import ShardDataset
from emoforge.shards.features import add_features
from emoforge.shards.sampling import SampleConfig, log_mel_per_frame
from emoforge.shards.tario import iter_tar_samples
from emoforge.shards.verify import verify_shards
from emoforge.shards.config import ShardsConfig
from emoforge.shards.writer import build_shards, load_index


@pytest.fixture
def tiny_vae(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(4, 4, 4, 4), down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, norm_num_groups=2, layers_per_block=1, sample_size=64,
    )
    vae.save_pretrained(tmp_path / "vae")
    return tmp_path / "vae", vae


def test_latents_and_audio_features_are_added(curated, tiny_vae, tmp_path):
    clip_ids = sorted(p.name[: -len(".json")] for p in (curated / "clips").glob("*.json"))
    (tmp_path / "skip.txt").write_text("\n".join(clip_ids[3:]))  # three clips keep the test fast
    out = tmp_path / "shards"
    build_shards(curated, out, ShardsConfig(exclude=str(tmp_path / "skip.txt"), val_fraction=0, test_fraction=0))
    before = {raw.key: raw.members for s in load_index(out)["shards"] for raw in iter_tar_samples(out / s["name"])}
    report = add_features(out, vae_dir=tiny_vae[0], audio="logmel")
    assert report.samples == 3 and not report.shards_failed
    assert verify_shards(out, decode_video=False).ok
    vae = tiny_vae[1].eval()
    for entry in load_index(out)["shards"][:3]:
        for raw in iter_tar_samples(out / entry["name"]):
            for member in ("mp4", "flac", "labels.npz"):
                assert raw.members[member] == before[raw.key][member]  # copied byte for byte
            meta = raw.meta
            latents = load_npy(raw.members[fmt.LATENTS_MEMBER])
            assert latents.shape == (meta["n_frames"], 4, 8, 8) and latents.dtype == np.float16
            audio = load_npy(raw.members[fmt.AUDIO_FEATURES_MEMBER])
            np.testing.assert_allclose(audio, log_mel_per_frame(raw.members["flac"], meta["n_frames"], 25), rtol=2e-3, atol=2e-2)
            assert meta["features"]["latents"]["scaling_factor"] == vae.config.scaling_factor

    dataset = ShardDataset(out, SampleConfig(stage=2, size_px=64, use_cached_latents=True), split=None, shuffle_buffer=0)
    sample = next(iter(dataset))
    assert sample["latents"].shape == (4, 16, 8, 8) and sample["reference_latent"].shape == (4, 8, 8)
    assert "frames" not in sample
    raw = next(r for s in load_index(out)["shards"] for r in iter_tar_samples(out / s["name"]) if r.key == sample["key"])
    latents = load_npy(raw.members[fmt.LATENTS_MEMBER]).astype(np.float32)
    start = int(sample["window_start"])
    torch.testing.assert_close(sample["latents"], torch.from_numpy(latents[start : start + 16]).permute(1, 0, 2, 3))
