"""EMO training-step time, peak memory and MFU for a preset with random weights.

    .venv/bin/python benchmarks/training/bench_step.py --preset tiny --device cpu
    .venv/bin/python benchmarks/training/bench_step.py --preset sd15 --device cuda --batch 1 --stage 2

One optimizer step = the trainer's: ReferenceNet on the reference and n motion latents,
Backbone on f noisy latents with audio windows and face mask (stage 3 adds speed),
eq. 1 loss, backward, gradient clipping, AdamW, EMA update; bf16 autocast on CUDA
(`--precision`), gradient checkpointing as the preset sets it (`--checkpointing`).
Inputs are random latents and features of the preset's shapes: the data pipeline is
benchmarked separately (benchmarks/shards/bench_stream.py), the VAE encode is not
included (cached latents, `emoforge shards features --vae`).

FLOPs: the same step is run once on the meta device under torch's FlopCounterMode
(shapes only, no memory), without recomputation, so the count is the model's FLOPs
(matmuls, convolutions, attention). MFU = FLOPs per step / step time / the device's
dense bf16 peak (H100 SXM and H200: 989 TFLOP/s; `--peak-tflops` to override).
Prints one JSON line; paste it into docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import time

import torch

from emoforge.training.ema import EMA
from emoforge.training.emo import EMO
from emoforge.training.objective import Denoiser, ModelInputs, diffusion_loss, draw
from emoforge.training.run_config import PRESETS
from emoforge.training.schedule import alphas_cumprod
from emoforge.training.stages import trainable_parameters

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def make_inputs(config, batch: int, stage: int, device) -> ModelInputs:
    model = config.model
    h = model.resolution // 8
    f, n = (1, 0) if stage == 1 else (model.num_frames, model.num_motion_frames)
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    audio = model.audio
    return ModelInputs(
        latents=randn(batch, 4, f, h, h), reference_latent=randn(batch, 4, h, h),
        motion_latents=randn(batch, 4, n, h, h) if stage > 1 and n else None,
        audio_windows=randn(batch, f, 2 * audio.window + 1, audio.wav2vec_layers, audio.wav2vec_dim) if stage > 1 else None,
        speed_embedding=randn(batch, f, model.speed.embedding_dim) if stage == 3 else None,
        face_mask=(torch.rand(batch, 1, model.resolution, model.resolution, generator=generator) > 0.5).float().to(device))


def count_flops(config, batch: int, stage: int) -> int:
    """fwd + bwd FLOPs of one micro-step, on the meta device (no recomputation, no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = EMO(config.model)
    trainable_parameters(model, stage)
    inputs = make_inputs(config, batch, stage, "meta")
    draws = draw(inputs, config, torch.Generator().manual_seed(0))
    draws = dataclasses.replace(draws, noise=draws.noise.to("meta"))
    alpha_bar = alphas_cumprod(config.model.diffusion).to("meta")
    counter = FlopCounterMode(display=False)
    with counter:
        loss = diffusion_loss(Denoiser(model), dataclasses.replace(inputs), draws, alpha_bar, drop=False)
        loss.backward()
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stage", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--batch", type=int, default=None, help="per-step batch (default: the preset's)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--checkpointing", default="preset", choices=("preset", "on", "off"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device dense bf16 peak, for MFU")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PRESETS[args.preset]
    batch = args.batch or config.train.batch_size
    device = torch.device(args.device)
    checkpointing = config.train.gradient_checkpointing if args.checkpointing == "preset" else args.checkpointing == "on"
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")

    flops = count_flops(config, batch, args.stage)
    torch.manual_seed(0)
    with torch.device(device):
        model = EMO(config.model)
    trainable = trainable_parameters(model, args.stage)
    model.backbone.enable_gradient_checkpointing(checkpointing)
    model.reference_net.enable_gradient_checkpointing(checkpointing)
    denoiser = Denoiser(model).train()
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=1e-5, fused=device.type == "cuda")
    ema = EMA(trainable, 0.9999)
    inputs = make_inputs(config, batch, args.stage, device)
    alpha_bar = alphas_cumprod(config.model.diffusion)
    generator = torch.Generator().manual_seed(0)

    def step():
        draws = draw(inputs, config, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = diffusion_loss(denoiser, inputs, draws, alpha_bar)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(trainable.values()), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(trainable)
        return loss

    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        step().item()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    result = {
        "preset": args.preset, "stage": args.stage, "batch": batch, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "precision": "bf16" if use_bf16 else "fp32",
        "gradient_checkpointing": checkpointing,
        "parameters": sum(p.numel() for p in model.parameters()), "trainable": sum(p.numel() for p in trainable.values()),
        "step_s_median": round(step_s, 4), "step_s_min": round(min(times), 4), "samples_per_s": round(batch / step_s, 3),
        "model_tflop_per_step": round(flops / 1e12, 4), "achieved_tflop_s": round(flops / step_s / 1e12, 4),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in result["device_name"]), None)
        if peak:
            result["peak_tflops"] = peak
            result["mfu"] = round(flops / step_s / (peak * 1e12), 4)
    else:
        result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
