"""Does audio matter? The diffusion loss with each clip's true audio vs another clip's audio (issue 6).

For a checkpoint and a split, every batch is scored three times with the *same* noise,
timesteps and latents (no condition dropout): with its own audio, with the audio rolled
by one within the batch (each clip gets another clip's audio), and with no audio
(zero windows, the dropped condition). A model that uses the audio has a lower loss
with the true audio. Reported overall and per timestep band.

    python -m emoforge.training.evaluate --checkpoint RUN --shards SHARDS [--split val] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

BANDS = ((0, 250), (250, 500), (500, 750), (750, 1000))


@torch.no_grad()
def audio_effect(checkpoint, shards, split: str = "val", batches: int = 20, batch_size: int = 4, seed: int = 1,
                 use_ema: bool = True, device: str = "cpu", epochs: int = 1) -> dict:
    from torch.utils.data import DataLoader

    from emoforge.shards.dataset import ShardDataset

    from .animate import load_checkpoint_model
    from .latents import make_latent_codec
    from .objective import Denoiser, diffusion_loss, draw, prepare_inputs
    from .run_config import sample_config
    from .schedule import alphas_cumprod

    model, config, folder = load_checkpoint_model(checkpoint, use_ema)
    config = replace(config, train=replace(config.train, stage=2 if config.train.stage == 1 else config.train.stage))
    torch_device = torch.device(device)
    model.to(torch_device)
    codec = make_latent_codec(config.latents, torch_device)
    denoiser = Denoiser(model)
    alpha_bar = alphas_cumprod(config.model.diffusion)
    generator = torch.Generator().manual_seed(seed)
    dataset = ShardDataset(shards, sample_config(config), split=split, seed=seed, shuffle_buffer=16, rank=0, world_size=1)
    totals = {"true": [], "shuffled": [], "none": []}
    timesteps = []
    done = 0
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=0, drop_last=True):
            inputs = prepare_inputs(batch, codec, config, torch_device)
            draws = draw(inputs, config, generator)
            variants = {"true": inputs.audio_windows, "shuffled": inputs.audio_windows.roll(1, dims=0),
                        "none": torch.zeros_like(inputs.audio_windows)}
            for name, audio in variants.items():
                scored = replace(inputs, audio_windows=audio)
                per_sample = [diffusion_loss(denoiser, _one(scored, i), _one_draws(draws, i), alpha_bar, drop=False).item()
                              for i in range(batch_size)]
                totals[name].extend(per_sample)
            timesteps.extend(draws.timesteps.tolist())
            done += 1
            if done >= batches:
                break
        if done >= batches:
            break
    result = {"checkpoint": str(folder), "split": split, "samples": len(timesteps), "seed": seed}
    for name, values in totals.items():
        result[f"loss_{name}_audio"] = sum(values) / len(values)
    result["shuffled_minus_true"] = result["loss_shuffled_audio"] - result["loss_true_audio"]
    wins = sum(s > t for s, t in zip(totals["shuffled"], totals["true"]))
    result["true_lower_fraction"] = wins / len(timesteps)
    result["by_timestep"] = {}
    for low, high in BANDS:
        chosen = [i for i, t in enumerate(timesteps) if low <= t < high]
        if chosen:
            result["by_timestep"][f"{low}-{high}"] = {
                "samples": len(chosen),
                **{f"loss_{name}_audio": sum(totals[name][i] for i in chosen) / len(chosen) for name in totals}}
    return result


def _one(inputs, i):
    from .objective import ModelInputs

    pick = (lambda x: None if x is None else x[i: i + 1])
    return ModelInputs(pick(inputs.latents), pick(inputs.reference_latent), pick(inputs.motion_latents),
                       pick(inputs.audio_windows), pick(inputs.speed_embedding), pick(inputs.face_mask))


def _one_draws(draws, i):
    from .objective import Draws

    return Draws(draws.noise[i: i + 1], draws.timesteps[i: i + 1], draws.keep_audio[i: i + 1],
                 draws.keep_reference[i: i + 1])


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
