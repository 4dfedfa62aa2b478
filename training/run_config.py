"""The configuration of a training run: network, latents, data and optimisation, as frozen dataclasses (issue 6).

One source of truth (STYLE rule 4). A run is `RunConfig(model=EMOConfig, latents=...,
data=..., train=...)`; presets `tiny` (CPU demo and tests) and `sd15` (paper §4.1:
AdamW at 1e-5, f=12, n=4, m=2, batch 4 for stages 2-3); a JSON or YAML file holds a
whole or partial `RunConfig` (optionally `"preset": NAME` as its base), and
`key=value` overrides address any nested field (`train.learning_rate=3e-4`,
`model.audio.window=2`). The resolved config is written as `run_config.json` in the
run folder and in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emoforge.errors import UserError

from .config import SD15, TINY, EMOConfig, _from_dict

FORMAT = "emoforge.training.run/1"


@dataclass(frozen=True)
class LatentConfig:
    """Where the diffusion runs: a diffusers AutoencoderKL's latent space, or the documented `pool8` fallback.

    `pool8` (no VAE weights needed): each 8x8 pixel block is averaged, its RGB is
    mapped to 4 channels by a fixed matrix with orthonormal columns (seeded by
    `projection_seed`) and multiplied by `scaling_factor`; decoding applies the
    transpose and upsamples x8. It keeps the VAE's geometry (4 channels, H/8 x W/8)
    so the network is the same, but it is not a learned code: frames come back as
    8x8-pixel blocks.
    """

    kind: Literal["pool8", "vae"] = "vae"
    vae_dir: str | None = None  # diffusers AutoencoderKL folder (kind="vae")
    scaling_factor: float = 0.18215  # SD1.5's; pool8 uses 2.3 (unit variance on the demo corpus, docs/training.md)
    projection_seed: int = 0
    use_cached: bool = True  # shards' latents.npy when present and made by the same VAE

    def __post_init__(self):
        if self.kind not in ("pool8", "vae"):
            raise UserError(f"latents.kind is pool8 or vae, not {self.kind!r}")


@dataclass(frozen=True)
class DataConfig:
    """How shards become batches (emoforge.shards.dataset)."""

    num_workers: int = 4  # DataLoader workers per process
    shuffle_buffer: int = 32
    # How frames cross from dataloader workers to the trainer (converted on the device):
    # "yuv420" uint8 I420 planes (half of RGB's bytes, no colour conversion in the workers),
    # "uint8" RGB, "float32" RGB in [-1, 1] (4x uint8's bytes). docs/format.md.
    pixels: str = "yuv420"
    window_starts: str = "any"  # "keyframes": windows and references on keyframes, faster streaming (docs/format.md)
    # Log-mel features (shards default) are standardised with these fixed values before the
    # audio projection (measured on the demo corpus, docs/training.md); wav2vec2 states use 0 / 1.
    audio_feature_mean: float = -7.3
    audio_feature_std: float = 3.9
    val_split: str = "val"

    def __post_init__(self):
        if self.window_starts not in ("any", "keyframes"):
            raise UserError(f"data.window_starts is 'any' or 'keyframes', got {self.window_starts!r}")
        if self.pixels not in ("yuv420", "uint8", "float32"):
            raise UserError(f"data.pixels is 'yuv420', 'uint8' or 'float32', got {self.pixels!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation (paper §4.1: AdamW, lr 1e-5 in all stages) and the run's bookkeeping."""

    stage: int = 2
    max_steps: int = 100_000
    batch_size: int = 4  # per process and micro-step; global batch = batch_size x accumulation x world size
    grad_accumulation: int = 1
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    weight_decay: float = 1e-2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    ema_decay: float = 0.9999
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    gradient_checkpointing: bool = True
    fsdp: bool = False  # shard parameters, gradients and optimizer state (torch FSDP2) instead of DDP
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 5000  # 0: never
    validation_seconds: float = 2.0  # length of the validation video (chained clips)
    validation_steps: int = 0  # DDIM steps for validation videos; 0: the model's sampling_steps

    def __post_init__(self):
        if self.stage not in (1, 2, 3):
            raise UserError(f"train.stage is 1, 2 or 3, not {self.stage}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"train.precision is auto, bf16 or fp32, not {self.precision!r}")
        for name in ("max_steps", "batch_size", "grad_accumulation", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise UserError(f"train.{name} must be >= 1")


@dataclass(frozen=True)
class RunConfig:
    model: EMOConfig = field(default_factory=EMOConfig)
    latents: LatentConfig = field(default_factory=LatentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        data = {k: v for k, v in data.items() if k != "format"}
        if isinstance(data.get("data"), dict) and "output_uint8" in data["data"]:  # saved before data.pixels: what it meant
            old = dict(data["data"])
            data["data"] = {"pixels": "uint8" if old.pop("output_uint8") else "float32", **old}
        base = data.pop("preset", None)
        try:
            if base is None:
                return _from_dict(cls, data)
            return merge(preset(base), data)
        except (ValueError, TypeError) as exc:
            raise UserError(f"bad run config: {exc}") from None

    def save(self, path: str | Path) -> Path:
        from .io import _atomic

        path = Path(path)
        _atomic(path, lambda p: p.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"))
        return path


# tiny: the log-mel features the shards yield, (f, 2m+1, 320) -> 1 "layer" of 320 (4 x 80 bands);
# pool8 latents; a learning rate a 2 M-parameter model trains at in a few hundred steps.
TINY_RUN = RunConfig(
    model=dataclasses.replace(TINY, audio=dataclasses.replace(TINY.audio, wav2vec_layers=1, wav2vec_dim=320)),
    latents=LatentConfig(kind="pool8", scaling_factor=2.3),
    data=DataConfig(num_workers=1, shuffle_buffer=8),
    train=TrainConfig(batch_size=4, learning_rate=3e-4, ema_decay=0.999, gradient_checkpointing=False,
                      log_every=10, checkpoint_every=100, validate_every=500, validation_seconds=1.0),
)

# sd15: the paper's setting; audio from cached wav2vec2-base states (13 x 768): `emoforge shards features --audio wav2vec2`.
SD15_RUN = RunConfig(model=SD15, data=DataConfig(audio_feature_mean=0.0, audio_feature_std=1.0))

PRESETS: dict[str, RunConfig] = {"tiny": TINY_RUN, "sd15": SD15_RUN}


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose from {sorted(PRESETS)} or give a config file") from None


def load_run_config(name_or_file: str) -> RunConfig:
    """A preset name, or a JSON/YAML file (a whole or partial RunConfig; `preset: NAME` as its base)."""
    if name_or_file in PRESETS:
        return PRESETS[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise UserError(f"--config {name_or_file!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a file")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UserError("YAML configs need PyYAML (pip install pyyaml); or write the config as JSON") from None
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of config sections")
    return RunConfig.from_dict(data)


def merge(config, changes: dict[str, Any]):
    """Nested dict of changes onto a frozen dataclass (unknown keys are errors)."""
    names = {f.name for f in dataclasses.fields(config)}
    replaced = {}
    for name, value in changes.items():
        if name not in names:
            raise UserError(f"unknown {type(config).__name__} key {name!r}; keys are: {', '.join(sorted(names))}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            replaced[name] = merge(current, value)
        else:
            replaced[name] = tuple(value) if isinstance(value, list) else value
    try:
        return dataclasses.replace(config, **replaced)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """`["train.learning_rate=3e-4", "model.num_frames=4"]` onto a RunConfig, type-checked per field."""
    for item in overrides:
        dotted, eq, text = item.partition("=")
        path = dotted.strip().split(".")
        if not eq or not all(path):
            raise UserError(f"bad override {item!r}; write section.key=value, e.g. train.learning_rate=1e-4")
        node, nested = config, {}
        cursor = nested
        for depth, name in enumerate(path):
            if not dataclasses.is_dataclass(node):
                raise UserError(f"{'.'.join(path[:depth])} is not a section in {item!r}")
            hints = typing.get_type_hints(type(node))
            if name not in hints:
                known = ", ".join(f.name for f in dataclasses.fields(node))
                raise UserError(f"unknown setting {dotted!r}: {'.'.join(path[:depth]) or 'the run config'} has {known}")
            if depth == len(path) - 1:
                cursor[name] = _parse(dotted, text.strip(), hints[name], getattr(node, name))
            else:
                cursor[name] = {}
                cursor = cursor[name]
                node = getattr(node, name)
        config = merge(config, nested)
    return config


def _parse(name: str, text: str, hint, current):
    origin = typing.get_origin(hint)
    if origin is Literal:
        if text not in typing.get_args(hint):
            raise UserError(f"{name} is one of {', '.join(map(str, typing.get_args(hint)))}, not {text!r}")
        return text
    if origin is tuple or isinstance(current, tuple):
        kind = type(current[0]) if current else int
        return tuple(_parse(name, part.strip(), kind, None) for part in text.split(",") if part.strip())
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or origin is typing.Union else (hint,)
    if type(None) in options and text.lower() in ("none", "null", ""):
        return None
    for kind in options:
        if kind is type(None):
            continue
        if dataclasses.is_dataclass(kind):
            raise UserError(f"{name} is a section; set its fields ({name}.FIELD=VALUE)")
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            continue
        try:
            return kind(text)
        except (TypeError, ValueError):
            continue
    raise UserError(f"{name}={text!r} is not a valid {' or '.join(getattr(o, '__name__', str(o)) for o in options)}")


def sample_config(config: RunConfig, stage: int | None = None, use_cached_latents: bool = False):
    """The shards' SampleConfig for this network: n, f, m and pixel size come from the model config."""
    from emoforge.shards.sampling import SampleConfig

    model = config.model
    if model.audio.window != model.speed.window:
        raise UserError(f"model.audio.window ({model.audio.window}) and model.speed.window ({model.speed.window}) "
                        "must agree: the shards window audio and speed with one m")
    return SampleConfig(stage=stage or config.train.stage, size_px=model.resolution,
                        motion_frames=model.num_motion_frames, frames=model.num_frames,
                        window_m=model.audio.window, use_cached_latents=use_cached_latents,
                        window_starts=config.data.window_starts)
