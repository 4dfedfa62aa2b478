"""`training/evaluate.py`: region weights, per-sample losses that match the trainer's, paired statistics, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_runs import tiny_run_config

from emoforge.training.config import TINY
from emoforge.training.emo import EMO
from emoforge.training.evaluate import main, paired_statistics, region_losses, region_weights, score_batch
from emoforge.training.loop import Trainer
from emoforge.training.objective import Denoiser, Draws, ModelInputs, diffusion_loss
from emoforge.training.schedule import alphas_cumprod


def test_region_weights_are_cell_fractions_of_the_face_box_and_its_lower_half():
    mask = torch.zeros(1, 1, 64, 64)
    mask[0, 0, 12:44, 8:40] = 1  # face box rows 12..43, columns 8..39; its middle row is 27.5
    weights = region_weights(mask, (8, 8))
    assert weights["all"].shape == (1, 1, 1, 8, 8) and torch.all(weights["all"] == 1)
    face = weights["face"][0, 0, 0]
    assert face[2, 1] == 1 and face[1, 1] == 0.5 and face[5, 4] == 0.5 and face[0, 0] == 0 and face[2, 5] == 0
    assert face.sum() * 64 == 32 * 32  # every face pixel counted once
    lower = weights["lower_face"][0, 0, 0]
    assert lower[:3].sum() == 0 and lower[3, 1] == 0.5 and lower[4, 1] == 1 and lower[5, 1] == 0.5
    assert lower.sum() * 64 == 16 * 32  # rows 28..43


def test_region_losses_are_weighted_means_per_sample():
    error = torch.rand(2, 4, 3, 8, 8)
    weights = {"all": torch.ones(2, 1, 1, 8, 8), "half": torch.zeros(2, 1, 1, 8, 8)}
    weights["half"][:, :, :, :4] = 1
    losses = region_losses(error, weights)
    torch.testing.assert_close(losses["all"], error.mean(dim=(1, 2, 3, 4)))
    torch.testing.assert_close(losses["half"], error[..., :4, :].mean(dim=(1, 2, 3, 4)))


def _batch(config, batch: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    latent, f, n = config.resolution // 8, config.num_frames, config.num_motion_frames
    mask = torch.zeros(batch, 1, config.resolution, config.resolution)
    mask[:, :, 16:56, 12:52] = 1
    audio = config.audio
    inputs = ModelInputs(
        latents=torch.randn(batch, 4, f, latent, latent, generator=generator),
        reference_latent=torch.randn(batch, 4, latent, latent, generator=generator),
        motion_latents=torch.randn(batch, 4, n, latent, latent, generator=generator),
        audio_windows=torch.randn(batch, f, 2 * audio.window + 1, audio.wav2vec_layers, audio.wav2vec_dim,
                                  generator=generator),
        speed_embedding=None, face_mask=mask)
    draws = Draws(noise=torch.randn(inputs.latents.shape, generator=generator),
                  timesteps=torch.tensor([10, 500, 990])[:batch], keep_audio=torch.ones(batch, dtype=torch.bool),
                  keep_reference=torch.ones(batch, dtype=torch.bool))
    return inputs, draws


def test_whole_latent_loss_is_the_trainers_loss_for_each_variant():
    model = EMO(TINY).eval()
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # random weights everywhere: audio-attention no longer zero, the variants differ
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    inputs, draws = _batch(TINY)
    alpha_bar = alphas_cumprod(TINY.diffusion)
    scores = score_batch(model, inputs, draws, alpha_bar)
    audio = {"true": inputs.audio_windows, "shuffled": inputs.audio_windows.roll(1, dims=0),
             "none": torch.zeros_like(inputs.audio_windows)}
    for variant, windows in audio.items():
        for i in range(3):
            pick = lambda x: x[i: i + 1]  # noqa: E731
            one = ModelInputs(pick(inputs.latents), pick(inputs.reference_latent), pick(inputs.motion_latents),
                              pick(windows), None, pick(inputs.face_mask))
            expected = diffusion_loss(Denoiser(model), one, Draws(pick(draws.noise), pick(draws.timesteps),
                                      pick(draws.keep_audio), pick(draws.keep_reference)), alpha_bar, drop=False)
            torch.testing.assert_close(scores[variant]["all"][i], expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(scores["true"]["all"], scores["shuffled"]["all"])
    assert set(scores["true"]) == {"all", "face", "lower_face"}


def test_audio_cannot_matter_at_initialisation():
    model = EMO(TINY).eval()  # audio-attention outputs are zero-initialised
    inputs, draws = _batch(TINY)
    scores = score_batch(model, inputs, draws, alphas_cumprod(TINY.diffusion))
    for region in ("all", "face", "lower_face"):
        torch.testing.assert_close(scores["true"][region], scores["shuffled"][region])
        torch.testing.assert_close(scores["true"][region], scores["none"][region])


def test_paired_statistics():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    constant = paired_statistics(true, true + 0.5, ["a", "a", "b", "c"])
    assert constant["mean_difference"] == pytest.approx(0.5) and constant["ci95"] == pytest.approx([0.5, 0.5])
    assert constant["true_lower_fraction"] == 1 and constant["clips_true_lower_fraction"] == 1
    assert constant["clips"] == 3
    assert constant["relative"] == pytest.approx(0.5 / 2.5)
    rng = np.random.default_rng(0)
    true = rng.random(400)
    noise = paired_statistics(true, true + rng.normal(0, 1, 400), [f"clip{i % 40}" for i in range(400)])
    low, high = noise["ci95"]
    assert low < 0 < high and 0.4 < noise["true_lower_fraction"] < 0.6
    # A clip-level effect: 2 clips, every window of one better, of the other worse -> the interval spans 0.
    clustered = paired_statistics(np.ones(20), 1 + np.r_[np.full(10, 1.0), np.full(10, -0.9)], ["a"] * 10 + ["b"] * 10)
    assert clustered["ci95"][0] < 0 < clustered["ci95"][1] and clustered["clips_true_lower_fraction"] == 0.5


def test_cli_scores_a_checkpoint(tiny_shards, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(tiny_run_config(tiny_shards, "train.max_steps=1", "train.checkpoint_every=1"), tiny_shards, run,
            device="cpu", say=lambda m: None).fit()
    out = tmp_path / "effect.json"
    capsys.readouterr()  # the trainer's log lines
    assert main(["--checkpoint", str(run), "--shards", str(tiny_shards), "--split", "train", "--batch-size", "2",
                 "--batches", "3", "--epochs", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result["samples"] == 6 and result["split"] == "train" and result["clips"] >= 2
    for region in ("all", "face", "lower_face"):
        assert all(np.isfinite(result["loss"][region][v]) for v in ("true", "shuffled", "none"))
        stats = result["shuffled_vs_true"][region]
        assert stats["ci95"][0] <= stats["mean_difference"] <= stats["ci95"][1]
    assert sum(band["samples"] for band in result["by_timestep"].values()) == 6
