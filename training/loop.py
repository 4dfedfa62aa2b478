"""The EMO training loop (paper §3.3, §4.1): one process, torchrun DDP, or FSDP.

`Trainer(config, shards, run_dir).fit()`, top to bottom:

1. **distributed**: RANK / WORLD_SIZE / LOCAL_RANK from torchrun (else one process);
   NCCL on GPUs, gloo on CPUs; the shards are split by rank and worker (shards.dataset).
2. **network**: `EMO(config.model)`, then `--init` folders (an earlier stage's checkpoint,
   an EMO model folder, SD1.5's UNet, an AnimateDiff MotionAdapter); the stage's
   trainable parameters (`stages.trainable_parameters`); gradient checkpointing;
   DDP (`find_unused_parameters` in stage 1, whose ReferenceNet tail feeds nothing) or FSDP2.
3. **optimiser**: AdamW over the trainable parameters (lr 1e-5 in the paper), linear
   warm-up, gradient clipping, EMA of the trainable parameters.
4. **resume**: the newest complete checkpoint restores model, optimiser, EMA, step, the
   data stream's position and every rank's RNG states; the run continues with the losses
   the uninterrupted run would have had (on CPU, bit for bit; tested).
5. **steps**: per micro-batch, frames -> latents, noise/t/dropout drawn from the run's
   generator, eq. 1 under bf16 autocast on GPUs; gradients accumulated (DDP syncs only
   on the last micro-batch), clipped, stepped; EMA updated.
6. **bookkeeping**: metrics.jsonl every step, stdout and TensorBoard every `log_every`;
   checkpoints every `checkpoint_every` (atomic); every `validate_every` steps a video
   from a held-out clip's reference frame and audio (EMA weights) in `validation/`.

Epochs: when any rank's stream ends, all ranks start the next epoch together (one
all-reduce of a flag per micro-batch), so no rank waits for data another lacks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from emoforge.errors import UserError

from . import checkpoint as ckpt
from .emo import EMO
from .ema import EMA
from .latents import make_latent_codec
from .metrics import MetricsLog
from .objective import Denoiser, diffusion_loss, draw, prepare_inputs
from .run_config import RunConfig, sample_config
from .schedule import alphas_cumprod
from .stages import trainable_parameters


@dataclasses.dataclass
class Placement:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_placement(device: str = "auto") -> Placement:
    """torchrun's environment (or one process) -> rank, world size and device; initialises the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda, but torch sees no GPU")
        torch_device = torch.device("cuda", local_rank if device == "cuda" else torch.device(device).index)
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                **({"device_id": torch_device} if backend == "nccl" else {}))
    return Placement(rank, world_size, local_rank, torch_device)


def resolve_shards(spec: str | Path) -> tuple[Path, list[Path]]:
    """`--shards`: a shards folder (its index's train split) or a pattern of tars (glob, or brace ranges
    `train-{000000..000099}.tar`); returns (the folder holding them, the train tars)."""
    import glob

    from emoforge.shards.dataset import shard_paths

    spec = str(spec)
    if Path(spec).is_dir():
        return Path(spec), shard_paths(spec, "train")
    paths: list[str] = []
    for pattern in _expand_braces(spec):
        paths.extend(glob.glob(pattern))
    if not paths:
        raise UserError(f"--shards {spec}: no shards folder or tar files match")
    tars = sorted({Path(p) for p in paths})
    return tars[0].parent, tars


def _expand_braces(pattern: str) -> list[str]:
    import re

    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not match:
        return [pattern]
    first, last = match.group(1), match.group(2)
    width = len(first)
    out = []
    for value in range(int(first), int(last) + 1):
        out.extend(_expand_braces(pattern[: match.start()] + str(value).zfill(width) + pattern[match.end():]))
    return out


def _shards_have_latents(paths: list[Path]) -> dict | None:
    """The cached-latents record of the first sample, if the shards carry latents."""
    from emoforge.shards import format as fmt
    from emoforge.shards.tario import iter_tar_samples

    for raw in iter_tar_samples(paths[0], lambda *a: None, check_checksums=False):
        if fmt.LATENTS_MEMBER in raw.members:
            return (raw.meta.get("features") or {}).get("latents") or {}
        return None
    return None


class Trainer:
    def __init__(self, config: RunConfig, shards: str | Path, run_dir: str | Path, *, init: list[str] = (),
                 resume: bool = False, device: str = "auto", say: Callable[[str], None] | None = None):
        self.config = config
        self.shards, self.train_paths = resolve_shards(shards)
        self.run_dir = Path(run_dir)
        self.init = list(init)
        self.resume = resume
        self.placement = setup_placement(device)
        self.say = say or (lambda message: print(message, flush=True))
        self.train = config.train
        device = self.placement.device
        self.autocast_dtype = torch.bfloat16 if (
            self.train.precision == "bf16" or (self.train.precision == "auto" and device.type == "cuda")) else None

    # -- 1-3: set-up -------------------------------------------------------------------------
    def _build(self) -> None:
        from emoforge.shards.dataset import ShardDataset, StreamProgress

        config, train, placement = self.config, self.train, self.placement
        torch.manual_seed(train.seed)
        self.model = EMO(config.model)
        for folder in self.init:
            self.say(initialize_from(self.model, folder))
        self.trainable = trainable_parameters(self.model, train.stage)
        if train.gradient_checkpointing:
            self.model.backbone.enable_gradient_checkpointing()
            self.model.reference_net.enable_gradient_checkpointing()
        self.model.to(placement.device)
        self.codec = make_latent_codec(config.latents, placement.device)

        denoiser = Denoiser(self.model)
        if train.fsdp:
            self.denoiser = shard_fsdp(denoiser, placement, self.autocast_dtype)
            self.trainable = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        elif placement.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.denoiser = DistributedDataParallel(
                denoiser, device_ids=[placement.device.index] if placement.device.type == "cuda" else None,
                find_unused_parameters=train.stage == 1)
        else:
            self.denoiser = denoiser
        self.optimizer = torch.optim.AdamW(
            list(self.trainable.values()), lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2),
            eps=train.adam_eps, weight_decay=train.weight_decay)
        self.ema = EMA(self.trainable, train.ema_decay)
        self.alpha_bar = alphas_cumprod(config.model.diffusion)

        paths = self.train_paths
        if not paths:
            raise UserError(f"{self.shards} has no train shards")
        cached = _shards_have_latents(paths) if config.latents.kind == "vae" and config.latents.use_cached else None
        use_cached = cached is not None and train.stage > 1 and cached.get("vae_config_sha256") == getattr(
            self.codec, "config_sha256", None)
        if cached is not None and not use_cached:
            self.say("the shards' cached latents are not from this VAE (or stage 1): encoding frames instead")
        self.dataset = ShardDataset(
            paths, sample_config(config, use_cached_latents=use_cached), split="train",
            rank=placement.rank, world_size=placement.world_size, seed=train.seed,
            shuffle_buffer=config.data.shuffle_buffer, output_dtype=config.data.pixels)
        self.progress = StreamProgress(self.dataset, config.data.num_workers)
        # The run's own randomness (noise, t, dropout), per rank; saved and restored with checkpoints.
        self.generator = torch.Generator().manual_seed(train.seed * 1_000_003 + placement.rank)
        self.step = 0

    def _files(self) -> dict[str, Path]:
        files = {"run_config.json": self.run_dir / "run_config.json"}
        buckets = self.shards / "speed_buckets.json"
        if buckets.is_file():
            files["speed_buckets.json"] = buckets
        return files

    # -- 4: resume ---------------------------------------------------------------------------
    def _restore(self, folder: Path) -> None:
        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        state = ckpt.read_state(folder)
        if state["world_size"] != self.placement.world_size:
            raise UserError(f"{folder} was written by {state['world_size']} processes, this run has "
                            f"{self.placement.world_size}: an exact resume needs the same number")
        if state["stage"] != self.train.stage:
            raise UserError(f"{folder} is a stage-{state['stage']} checkpoint; resume it with --stage {state['stage']} "
                            f"(start a new stage from it with --init)")
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_model_state_dict(self.model, load_file(str(folder / "model" / "model.safetensors")), options=options)
        set_optimizer_state_dict(self.model, self.optimizer, ckpt.load_optimizer(folder), options=options)
        self.ema.load_full_state(ckpt.load_ema(folder), state["ema_updates"])
        rng = ckpt.load_rng(folder)[self.placement.rank]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.placement.device if self.placement.device.type == "cuda" else 0)
        np.random.set_state(_numpy_state_from(rng["numpy"]))
        random.setstate(_python_state_from(rng["python"]))
        self.generator.set_state(rng["generator"])
        self.dataset.load_state_dict(state["data"])
        self.progress.load_state_dict(state["data"])
        # This rank's progress keeps only its own slots, so merging the ranks' states stays exact.
        workers = self.progress.num_workers
        own = range(self.placement.rank * workers, (self.placement.rank + 1) * workers)
        self.progress.positions = {s: p for s, p in self.progress.positions.items() if s in own}
        self.progress.skipped = {s: p for s, p in self.progress.skipped.items() if s in own}
        self.step = int(state["step"])
        self.say(f"resumed from {folder} at step {self.step}")

    def _rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
                 "numpy": _numpy_state_to(np.random.get_state()), "python": _python_state_to(random.getstate())}
        if self.placement.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.placement.device)
        return state

    def _save(self) -> None:
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                             get_optimizer_state_dict)

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(self.model, options=options)  # collective under FSDP
        optimizer_state = get_optimizer_state_dict(self.model, self.optimizer, options=options)
        ema_state = self.ema.full_state()
        data_state = self.progress.state_dict()
        rng = self._rng_state()
        if self.placement.distributed:
            gathered_data, gathered_rng = [None] * self.placement.world_size, [None] * self.placement.world_size
            dist.all_gather_object(gathered_data, data_state)
            dist.all_gather_object(gathered_rng, rng)
            from emoforge.shards.dataset import StreamProgress

            data_state, rng_states = StreamProgress.merge(gathered_data), gathered_rng
        else:
            rng_states = [rng]
        if self.placement.is_main:
            folder = ckpt.save_checkpoint(
                self.run_dir, self.step, model_config=self.config.model.to_dict(), model_state=model_state,
                ema_state=ema_state, optimizer_state=optimizer_state, rng_states=rng_states,
                state={"stage": self.train.stage, "ema_updates": self.ema.num_updates, "data": data_state,
                       "world_size": self.placement.world_size},
                files=self._files(), keep=self.train.keep_checkpoints)
            self.say(f"checkpoint {folder}")
        self._barrier()

    # -- 5: data and steps ----------------------------------------------------------------------
    def _loader(self):
        from torch.utils.data import DataLoader

        workers = self.config.data.num_workers
        return iter(DataLoader(self.dataset, batch_size=self.train.batch_size, num_workers=workers,
                               pin_memory=self.placement.device.type == "cuda",
                               persistent_workers=False, drop_last=True))

    def _next_batch(self) -> dict:
        fresh = False
        while True:
            try:
                batch, exhausted = next(self.iterator), 0
            except StopIteration:
                batch, exhausted = None, 1
            if self.placement.distributed:
                flag = torch.tensor([exhausted], device=self.placement.device if dist.get_backend() == "nccl" else "cpu")
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                exhausted = int(flag.item())
            if not exhausted:
                return batch
            if fresh:
                raise UserError("a whole epoch of the train split yielded no batch on some rank: too few samples "
                                f"for batch size {self.train.batch_size} x {self.placement.world_size} processes")
            fresh = True
            epoch = self.dataset.epoch + 1
            self.dataset.set_epoch(epoch)
            self.progress.start_epoch(epoch)
            self.iterator = self._loader()

    def _learning_rate(self) -> float:
        warmup = self.train.warmup_steps
        scale = min(1.0, (self.step + 1) / warmup) if warmup else 1.0
        return self.train.learning_rate * scale

    def _train_step(self) -> dict:
        train = self.train
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate()
        total = 0.0
        for micro in range(train.grad_accumulation):
            batch = self._next_batch()
            inputs = prepare_inputs(batch, self.codec, self.config, self.placement.device)
            draws = draw(inputs, self.config, self.generator)
            last = micro == train.grad_accumulation - 1
            sync = self.denoiser.no_sync() if (self.placement.distributed and not train.fsdp and not last) else nullcontext()
            autocast = (torch.autocast(self.placement.device.type, dtype=self.autocast_dtype)
                        if self.autocast_dtype is not None else nullcontext())
            with sync:
                with autocast:
                    loss = diffusion_loss(self.denoiser, inputs, draws, self.alpha_bar)
                (loss / train.grad_accumulation).backward()
            self.progress.update(batch)
            total += loss.detach().float().item() / train.grad_accumulation
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.trainable.values()), train.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.trainable)
        self.step += 1
        loss_value = total
        if self.placement.distributed:
            reduced = torch.tensor([total], dtype=torch.float64,
                                   device=self.placement.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(reduced)
            loss_value = float(reduced.item()) / self.placement.world_size
        return {"loss": loss_value, "grad_norm": float(grad_norm), "lr": self._learning_rate(),
                "epoch": self.dataset.epoch, "skipped": self.progress.total_skipped}

    def _barrier(self) -> None:
        if self.placement.distributed:
            dist.barrier()

    # -- 6: validation ------------------------------------------------------------------------
    def _validate(self) -> None:
        from .validation import validation_video

        if not (self.placement.is_main or self.train.fsdp):
            self._barrier()
            return
        started = time.perf_counter()
        self.ema.swap_into(self.trainable)
        self.model.eval()
        try:
            path = validation_video(self.model, self.codec, self.config, self.shards,
                                    self.run_dir / "validation" / f"{ckpt.step_name(self.step)}.mp4",
                                    self.placement.device, write=self.placement.is_main)
        finally:
            self.model.train()
            self.ema.swap_into(self.trainable)
        if path is not None and self.placement.is_main:
            self.say(f"validation video {path} ({time.perf_counter() - started:.1f} s)")
        self._barrier()

    # -- the run -------------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train to `train.max_steps`; returns this run's metric rows (every rank computes the same)."""
        placement = self.placement
        if placement.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._barrier()
        self._build()
        resume_from = None
        if self.resume:
            if placement.is_main:
                ckpt.clean_partials(self.run_dir)
            resume_from = ckpt.latest_checkpoint(self.run_dir)
            if resume_from is None:
                self.say(f"--resume: no checkpoint in {self.run_dir}, starting at step 0")
            else:
                changed = config_changes(json.loads((resume_from / "run_config.json").read_text()), self.config)
                if changed:
                    raise UserError(f"{resume_from} was trained with another config ({', '.join(changed[:5])}); "
                                    "resume with the same --config/--set (see its run_config.json) or start a new "
                                    "run folder")
                self._restore(resume_from)
        elif placement.is_main and ckpt.latest_checkpoint(self.run_dir) is not None:
            raise UserError(f"{self.run_dir} already holds checkpoints: pass --resume, or choose a new --out")
        if placement.is_main:
            self.config.save(self.run_dir / "run_config.json")
            buckets = self.shards / "speed_buckets.json"
            if buckets.is_file():
                shutil.copyfile(buckets, self.run_dir / "speed_buckets.json")
        self._barrier()
        log = MetricsLog(self.run_dir, resume_step=self.step, enabled=placement.is_main)
        if placement.is_main:
            self.say(describe(self))
        rows = []
        self.model.train()
        self.iterator = self._loader()
        started, window_start, window_steps = time.perf_counter(), time.perf_counter(), 0
        try:
            while self.step < self.train.max_steps:
                values = self._train_step()
                window_steps += 1
                echo = self.step % self.train.log_every == 0 or self.step == self.train.max_steps
                if echo:
                    now = time.perf_counter()
                    values["step_time_s"] = (now - window_start) / window_steps
                    window_start, window_steps = now, 0
                log.log(self.step, values, echo=echo)
                rows.append({"step": self.step, **values})
                if self.step % self.train.checkpoint_every == 0 or self.step == self.train.max_steps:
                    self._save()
                if self.train.validate_every and self.step % self.train.validate_every == 0:
                    self._validate()
        finally:
            log.close()
        if placement.is_main:
            self.say(f"trained to step {self.step} in {time.perf_counter() - started:.1f} s; run folder {self.run_dir}")
        return rows


# What a resumed run may change: how long it runs and how often it reports.
RESUMABLE_CHANGES = {"max_steps", "log_every", "checkpoint_every", "keep_checkpoints", "validate_every",
                     "validation_seconds", "validation_steps"}


def config_changes(saved: dict, config: RunConfig) -> list[str]:
    """Dotted keys whose values differ between a saved run config and `config`, except RESUMABLE_CHANGES."""
    current = json.loads(json.dumps(config.to_dict()))
    changed = []

    def walk(a, b, prefix):
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                walk(x, y, f"{prefix}{key}.")
            elif x != y and not (prefix == "train." and key in RESUMABLE_CHANGES):
                changed.append(f"{prefix}{key}")

    walk(saved, current, "")
    return changed


def describe(trainer: Trainer) -> str:
    config, placement = trainer.config, trainer.placement
    trainable = sum(p.numel() for p in trainer.trainable.values())
    total = sum(p.numel() for p in trainer.model.parameters())
    batch = config.train.batch_size * config.train.grad_accumulation * placement.world_size
    mode = "FSDP" if config.train.fsdp else ("DDP" if placement.distributed else "one process")
    return (f"stage {config.train.stage}: {trainable:,} of {total:,} parameters train; {mode} x{placement.world_size} "
            f"on {placement.device}; global batch {batch}; latents {config.latents.kind}; "
            f"precision {'bf16' if trainer.autocast_dtype else 'fp32'}")


def initialize_from(model: EMO, folder: str | Path) -> str:
    """`--init`: an emoforge checkpoint or run folder (EMA weights when saved), an EMO model folder,
    a diffusers SD1.5 UNet folder or a diffusers MotionAdapter folder."""
    from .io import load_config, load_model
    from .weights import load_motion_adapter, load_sd15_into_emo

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--init {folder}: no such folder")
    if (folder / "checkpoints").is_dir() or (folder / "state.json").is_file():
        checkpoint = ckpt.resolve_checkpoint(folder)
        source = load_model(checkpoint / "model")
        state = source.state_dict()
        if (checkpoint / "ema.safetensors").is_file():
            state.update(ckpt.load_ema(checkpoint))
        _load_same_config(model, source.config, state, checkpoint)
        return f"initialised from {checkpoint} (EMA weights where saved)"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"--init {folder}: no config.json (expected a checkpoint, an EMO, SD1.5 UNet or MotionAdapter folder)")
    kind = json.loads(config_path.read_text())
    if kind.get("format", "").startswith("emoforge.training.EMO"):
        source = load_model(folder)
        _load_same_config(model, load_config(folder), source.state_dict(), folder)
        return f"initialised from the EMO model {folder}"
    if kind.get("_class_name") == "UNet2DConditionModel":
        reports = load_sd15_into_emo(model, folder)
        return "; ".join(r.summary() for r in (reports.values() if isinstance(reports, dict) else [reports]))
    if kind.get("_class_name") == "MotionAdapter":
        return load_motion_adapter(model.backbone, folder).summary()
    raise UserError(f"--init {folder}: not a checkpoint, EMO, SD1.5 UNet or MotionAdapter folder")


def _load_same_config(model: EMO, config, state: dict, where) -> None:
    if config.to_dict() != model.config.to_dict():
        raise UserError(f"--init {where} has another network config than this run's model section")
    model.load_state_dict(state, strict=True)


def shard_fsdp(denoiser: Denoiser, placement: Placement, dtype: torch.dtype | None):
    """FSDP2: every UNet block, each UNet, the small encoders, then the root (which holds no parameters)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from .unet_blocks import DownBlock, MidBlock, UpBlock

    # The UNets return rearranged views; nothing modifies them in place, which is what FSDP2 warns about.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(placement.device.type, (placement.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
    model = denoiser.model
    for module in list(model.modules()):
        if isinstance(module, (DownBlock, MidBlock, UpBlock)):
            fully_shard(module, mesh=mesh, mp_policy=policy)
    for module in (model.reference_net, model.backbone, model.face_locator, model.audio_projection,
                   model.speed_encoder):
        fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(denoiser, mesh=mesh, mp_policy=policy)  # the root: its forward is the one the loop calls
    return denoiser


# RNG states as tensors and plain values, so `torch.load(weights_only=True)` reads them back.
def _numpy_state_to(state) -> dict:
    kind, keys, pos, has_gauss, cached = state
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from(state: dict):
    return (state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


def _python_state_to(state) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss if gauss is not None else math.nan}


def _python_state_from(state: dict):
    gauss = state["gauss"]
    return (state["version"], tuple(int(v) for v in state["internal"].tolist()),
            None if isinstance(gauss, float) and math.isnan(gauss) else gauss)
