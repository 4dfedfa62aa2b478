"""Does audio matter? The diffusion loss with each clip's true audio vs another clip's audio (issue 6).

For a checkpoint and a split, every batch is scored three times with the *same* noise,
timesteps and latents (no condition dropout): with its own audio, with the audio rolled
by one within the batch (each sample gets another sample's audio), and with no audio
(zero windows, the dropped condition). A model that uses the audio has a lower loss
with the true audio.

The loss is eq. 1's ε-MSE over the whole latent (what the trainer minimises), and, as
extra readings, restricted to the face box and to its lower half (where the audio acts:
the mouth and jaw), each latent cell weighted by its share of the region's pixels.
Differences are paired (same sample, noise and t); their 95 % interval comes from a
bootstrap over *clips* (a clip's windows are not independent of each other). Also
reported per timestep band.

    python -m emoforge.training.evaluate --checkpoint RUN --shards SHARDS [--split val] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

BANDS = ((0, 250), (250, 500), (500, 750), (750, 1000))
VARIANTS = ("true", "shuffled", "none")
REGIONS = ("all", "face", "lower_face")


def region_weights(face_mask: torch.Tensor, latent_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """face_mask (b, 1, H, W) at pixel size -> {region: (b, 1, 1, h, w) weights in [0, 1]} on the latent grid.

    A cell's weight is the fraction of its pixels inside the region. `lower_face` keeps
    the mask's rows from the vertical middle of its bounding box down (mouth, jaw, chin).
    """
    mask = (face_mask > 0.5).float()
    rows = torch.arange(mask.shape[2], device=mask.device, dtype=torch.float32)
    occupied = mask.amax(dim=3, keepdim=True) > 0  # b 1 H 1
    top = torch.where(occupied, rows[:, None], torch.inf).amin(dim=2, keepdim=True)  # b 1 1 1
    bottom = torch.where(occupied, rows[:, None], -torch.inf).amax(dim=2, keepdim=True)
    lower = mask * (rows[:, None] >= (top + bottom) / 2)

    def as_cells(pixels: torch.Tensor) -> torch.Tensor:
        return rearrange(F.adaptive_avg_pool2d(pixels, latent_hw), "b 1 h w -> b 1 1 h w")

    return {"all": torch.ones_like(as_cells(mask)), "face": as_cells(mask), "lower_face": as_cells(lower)}


def region_losses(squared_error: torch.Tensor, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(ε - ε_θ)² (b, c, f, h, w) -> {region: (b,)} weighted means over channels, frames and cells."""
    channels_frames = squared_error.shape[1] * squared_error.shape[2]
    dims = (1, 2, 3, 4)
    return {name: (squared_error * w).sum(dim=dims) / (w.sum(dim=dims) * channels_frames).clamp_min(1e-12)
            for name, w in weights.items()}


def paired_statistics(true: np.ndarray, other: np.ndarray, clips: list[str], resamples: int = 10_000,
                      seed: int = 0) -> dict:
    """Per-sample differences `other - true` (> 0: the true audio is better) with a clip-bootstrap 95 % CI."""
    difference = np.asarray(other, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    names, clip_of = np.unique(np.asarray(clips), return_inverse=True)
    sums = np.bincount(clip_of, weights=difference, minlength=len(names))
    counts = np.bincount(clip_of, minlength=len(names))
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(names), size=(resamples, len(names)))  # clips drawn with replacement
    boot = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "mean_difference": float(difference.mean()),
        "ci95": [float(low), float(high)],
        "relative": float(difference.mean() / np.mean(true)),
        "true_lower_fraction": float((difference > 0).mean()),
        "clips": len(names),
        "clips_true_lower_fraction": float((sums / counts > 0).mean()),
    }


@torch.no_grad()
def score_batch(model, inputs, draws, alpha_bar: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """{variant: {region: (b,) losses}} for one batch; the same z_t, t and reference features for every variant."""
    from .schedule import add_noise

    noisy = add_noise(inputs.latents, draws.noise, draws.timesteps, alpha_bar)
    reference = model.encode_reference(inputs.reference_latent, inputs.motion_latents)
    weights = region_weights(inputs.face_mask, tuple(inputs.latents.shape[-2:]))
    audio = inputs.audio_windows
    variants = {"true": audio, "shuffled": audio.roll(1, dims=0), "none": torch.zeros_like(audio)}
    scores = {}
    for name, windows in variants.items():
        prediction = model(noisy, draws.timesteps, reference, audio_windows=windows,
                           speed_embedding=inputs.speed_embedding, face_mask=inputs.face_mask,
                           use_temporal=inputs.use_temporal)
        scores[name] = region_losses((draws.noise.float() - prediction.float()) ** 2, weights)
    return scores


@torch.no_grad()
def audio_effect(checkpoint, shards, split: str = "val", batches: int = 20, batch_size: int = 4, seed: int = 1,
                 use_ema: bool = True, device: str = "cpu", epochs: int = 1) -> dict:
    from torch.utils.data import DataLoader

    from emoforge.shards.dataset import ShardDataset

    from .animate import load_checkpoint_model
    from .latents import make_latent_codec
    from .objective import draw, prepare_inputs
    from .run_config import sample_config
    from .schedule import alphas_cumprod

    model, config, folder = load_checkpoint_model(checkpoint, use_ema)
    config = replace(config, train=replace(config.train, stage=2 if config.train.stage == 1 else config.train.stage))
    torch_device = torch.device(device)
    model.to(torch_device).eval()
    codec = make_latent_codec(config.latents, torch_device)
    alpha_bar = alphas_cumprod(config.model.diffusion)
    generator = torch.Generator().manual_seed(seed)
    dataset = ShardDataset(shards, sample_config(config), split=split, seed=seed, shuffle_buffer=16, rank=0, world_size=1)
    losses = {variant: {region: [] for region in REGIONS} for variant in VARIANTS}
    timesteps, clips = [], []
    done = 0
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=0, drop_last=True):
            inputs = prepare_inputs(batch, codec, config, torch_device)
            draws = draw(inputs, config, generator)
            for variant, by_region in score_batch(model, inputs, draws, alpha_bar).items():
                for region, values in by_region.items():
                    losses[variant][region].extend(values.tolist())
            timesteps.extend(draws.timesteps.tolist())
            clips.extend(batch["key"])
            done += 1
            if done >= batches:
                break
        if done >= batches:
            break
    return summarize(losses, timesteps, clips) | {"checkpoint": str(folder), "split": split, "seed": seed}


def summarize(losses: dict[str, dict[str, list[float]]], timesteps: list[int], clips: list[str]) -> dict:
    """Mean losses per variant and region, paired statistics against the true audio, and timestep bands."""
    result = {"samples": len(timesteps), "clips": len(set(clips)),
              "loss": {region: {variant: float(np.mean(losses[variant][region])) for variant in VARIANTS}
                       for region in REGIONS}}
    for other in ("shuffled", "none"):
        result[f"{other}_vs_true"] = {region: paired_statistics(losses["true"][region], losses[other][region], clips)
                                      for region in REGIONS}
    result["by_timestep"] = {}
    t = np.asarray(timesteps)
    for low, high in BANDS:
        chosen = np.flatnonzero((t >= low) & (t < high))
        if len(chosen):
            band = {region: {variant: float(np.mean(np.asarray(losses[variant][region])[chosen]))
                             for variant in VARIANTS} for region in REGIONS}
            result["by_timestep"][f"{low}-{high}"] = {"samples": len(chosen), "loss": band}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emoforge.training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--shards", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1, help="passes over the split (fresh frame windows each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = audio_effect(args.checkpoint, args.shards, args.split, args.batches, args.batch_size, args.seed,
                          not args.no_ema, epochs=args.epochs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
