"""Tiny random diffusers/transformers models saved to folders, as the real weights would be."""

from __future__ import annotations

import pytest
import torch

TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8,
)
TINY_ADAPTER = dict(
    block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=2,
    motion_norm_num_groups=8, motion_max_seq_length=16, use_motion_mid_block=True,
)


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter random values (diffusers zero-inits some outputs, which would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return module


@pytest.fixture(scope="session")
def sd_unet_folder(tmp_path_factory):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = randomize(UNet2DConditionModel(**TINY_UNET), seed=1).eval()
    folder = tmp_path_factory.mktemp("sd_unet")
    unet.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def motion_adapter_folder(tmp_path_factory):
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    adapter = randomize(MotionAdapter(**TINY_ADAPTER), seed=2).eval()
    folder = tmp_path_factory.mktemp("motion_adapter")
    adapter.save_pretrained(folder, safe_serialization=True)
    return folder


def make_emo_inputs(config, batch: int = 2, seed: int = 0, frames: int | None = None) -> dict[str, torch.Tensor]:
    """Random inputs of the right shapes for an `EMO` built from `config`."""
    generator = torch.Generator().manual_seed(seed)
    latent = config.resolution // 8
    f = config.num_frames if frames is None else frames
    channels = config.unet.in_channels
    audio = config.audio
    return {
        "noisy_latents": torch.randn(batch, channels, f, latent, latent, generator=generator),
        "timestep": torch.randint(0, 1000, (batch,), generator=generator),
        "reference_latent": torch.randn(batch, channels, latent, latent, generator=generator),
        "motion_latents": torch.randn(batch, channels, config.num_motion_frames, latent, latent, generator=generator),
        "audio_windows": torch.randn(batch, f, 2 * audio.window + 1, audio.wav2vec_layers, audio.wav2vec_dim,
                                     generator=generator),
        "speed_embedding": torch.rand(batch, f, config.speed.embedding_dim, generator=generator) * 2 - 1,
        "face_mask": (torch.rand(batch, 1, config.resolution, config.resolution, generator=generator) > 0.5).float(),
    }


@pytest.fixture
def emo_inputs():
    return make_emo_inputs


# -- the trainer's tests: tiny shards of synthetic clips (docs/clips.md), built once per session --------------
@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """64 px synthetic clips (30-40 frames) -> shards with one clip per shard: >= 2 train shards for 2 ranks."""
    from emoforge.shards.config import ShardsConfig
    from emoforge.shards.synthetic import make_curated_corpus
    from emoforge.shards.writer import build_shards

    curated = tmp_path_factory.mktemp("curated")
    make_curated_corpus(curated, sources=5, clips_per_source=2, n_frames=(30, 40), size_px=64, seed=3)
    out = tmp_path_factory.mktemp("train_shards")
    build_shards(curated, out, ShardsConfig(val_fraction=0.2, test_fraction=0.0, shard_size_mb=0.001,
                                            min_shards_per_split=2))
    return out
