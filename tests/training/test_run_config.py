"""Run configuration (presets, files, overrides), the pool8 latents fallback and the EMA."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from emoforge.errors import UserError
from emoforge.training.ema import EMA
from emoforge.training.latents import PooledLatents
from emoforge.training.run_config import TINY_RUN, RunConfig, apply_overrides, load_run_config


def test_overrides_files_and_round_trip(tmp_path):
    config = apply_overrides(TINY_RUN, ["train.learning_rate=1e-5", "model.num_frames=4", "train.precision=bf16",
                                        "latents.vae_dir=none", "model.unet.block_out_channels=32,64"])
    assert config.train.learning_rate == 1e-5 and config.model.num_frames == 4 and config.train.precision == "bf16"
    assert config.model.unet.block_out_channels == (32, 64)
    path = config.save(tmp_path / "run_config.json")
    assert load_run_config(str(path)) == config  # the saved resolved config reruns the same run
    (tmp_path / "partial.json").write_text(json.dumps({"preset": "tiny", "train": {"max_steps": 7}}))
    partial = load_run_config(str(tmp_path / "partial.json"))
    assert partial.train.max_steps == 7 and partial.model == TINY_RUN.model
    with pytest.raises(UserError, match="unknown setting"):
        apply_overrides(TINY_RUN, ["model.audio.nope=1"])
    with pytest.raises(UserError, match="is a section"):
        apply_overrides(TINY_RUN, ["model.audio=3"])
    with pytest.raises(UserError, match="unknown RunConfig key"):
        RunConfig.from_dict({"preset": "tiny", "optimizer": {}})


def test_pool8_latents_are_block_means_and_invert_exactly():
    codec = PooledLatents(scaling_factor=2.3, projection_seed=0)
    pixels = torch.rand(2, 3, 5, 32, 48) * 2 - 1
    latents = codec.encode(pixels)
    assert latents.shape == (2, 4, 5, 4, 6)
    block_means = F.avg_pool3d(pixels, (1, 8, 8))
    decoded = codec.decode(latents)
    torch.testing.assert_close(decoded[..., ::8, ::8], block_means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(codec.decode(codec.encode(decoded)), decoded, rtol=1e-5, atol=1e-6)


def test_ema_warmup_swap_and_state():
    parameter = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"p": parameter}, decay=0.9)
    with torch.no_grad():
        parameter.fill_(1.0)
    ema.update({"p": parameter})  # k = 0: decay min(0.9, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["p"], torch.full((3,), 0.9))
    ema.swap_into({"p": parameter})
    assert torch.equal(parameter.detach(), torch.full((3,), 0.9))
    ema.swap_into({"p": parameter})
    assert torch.equal(parameter.detach(), torch.ones(3))
    other = EMA({"p": parameter}, decay=0.9)
    other.load_full_state(ema.full_state(), ema.num_updates)
    assert other.num_updates == 1 and torch.equal(other.shadow["p"], ema.shadow["p"])
