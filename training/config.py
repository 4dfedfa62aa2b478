"""EMO network configuration: frozen dataclasses and the `tiny` / `sd15` presets (paper §3.2, §4.1).

One source of truth for every shape in the network. `sd15` is the paper's setting
(SD1.5 UNet, 512x512 frames, f=12 generated frames, n=4 motion frames, m=2 audio and
speed context, 40 DDIM steps); `tiny` is the same architecture shrunk for CPU tests.
Configs round-trip through JSON (`to_dict` / `from_dict`) so the resolved config is
saved beside every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

CrossAttentionMode = Literal["text", "reference", "self"]


@dataclass(frozen=True)
class UNetConfig:
    """The SD1.5 2-D UNet layout shared by Backbone and ReferenceNet.

    `down_attention[i]` says whether down block i has spatial transformers (SD1.5:
    the first three); up blocks mirror it. `cross_attention_mode` fills the
    cross-attention slot of every transformer block: "text" (SD1.5 itself, attends to
    `cross_attention_dim`-wide text tokens), "reference" (EMO Backbone: attends to the
    ReferenceNet's features of the same block), "self" (EMO ReferenceNet: a second
    self-attention, as it has no text prompt).
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_attention: tuple[bool, ...] = (True, True, True, False)
    layers_per_block: int = 2
    num_attention_heads: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    cross_attention_mode: CrossAttentionMode = "text"
    with_output_head: bool = True  # conv_norm_out/conv_out; the ReferenceNet has none

    def __post_init__(self):
        if len(self.down_attention) != len(self.block_out_channels):
            raise ValueError("down_attention needs one flag per block in block_out_channels")
        if self.cross_attention_mode not in ("text", "reference", "self"):
            raise ValueError(f"unknown cross_attention_mode {self.cross_attention_mode!r}")
        for channels in self.block_out_channels:
            if channels % self.num_attention_heads or channels % self.norm_num_groups:
                raise ValueError(f"{channels} channels do not split into heads/groups")

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4


@dataclass(frozen=True)
class TemporalConfig:
    """AnimateDiff motion modules (keys as diffusers' MotionAdapter) plus EMO's speed attention."""

    num_attention_heads: int = 8
    transformer_layers: int = 1
    max_seq_length: int = 32
    norm_num_groups: int = 32
    mid_block: bool = True
    speed_attention: bool = True  # EMO speed layers' cross-attention inside each module


@dataclass(frozen=True)
class AudioConfig:
    """wav2vec2 features -> window ±m -> a few tokens per frame -> audio-attention."""

    wav2vec_layers: int = 13  # hidden states of wav2vec2-base: embeddings + 12 layers
    wav2vec_dim: int = 768
    window: int = 2  # m, frames of context on each side (paper §4.1)
    hidden_dim: int = 512
    tokens_per_frame: int = 8
    token_dim: int = 768
    num_attention_heads: int = 8  # audio-attention heads in each transformer block


@dataclass(frozen=True)
class SpeedConfig:
    """Speed buckets d, window ±m and the speed feature size l (paper §3.2)."""

    num_buckets: int = 8  # d, as labeling.speed.fit_speed_buckets' default
    window: int = 2  # m
    feature_dim: int = 768  # l

    @property
    def embedding_dim(self) -> int:
        return (2 * self.window + 1) * self.num_buckets


@dataclass(frozen=True)
class FaceLocatorConfig:
    """Light convs mapping the pixel-size face mask to the latent (x8 smaller, 4 channels)."""

    mask_channels: int = 1
    block_channels: tuple[int, ...] = (16, 32, 96, 256)  # 3 stride-2 steps: x8

    def __post_init__(self):
        if len(self.block_channels) != 4:
            raise ValueError("the Face Locator downsamples x8: it needs 4 block_channels")


@dataclass(frozen=True)
class DiffusionConfig:
    """SD1.5's noise schedule and the paper's sampling setting (eq. 1, §4.1)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    steps_offset: int = 1
    sampling_steps: int = 40
    audio_dropout: float = 0.05  # condition dropout for classifier-free guidance
    reference_dropout: float = 0.05
    audio_guidance: float = 3.5
    reference_guidance: float = 3.5


@dataclass(frozen=True)
class EMOConfig:
    """The whole network: Backbone + ReferenceNet (same UNet), temporal, audio, speed, Face Locator."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    face_locator: FaceLocatorConfig = field(default_factory=FaceLocatorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    resolution: int = 512  # pixels; latents are resolution // 8
    num_frames: int = 12  # f
    num_motion_frames: int = 4  # n

    def __post_init__(self):
        if self.num_frames + self.num_motion_frames > self.temporal.max_seq_length:
            raise ValueError("n + f frames exceed the temporal modules' max_seq_length")

    @property
    def backbone(self) -> UNetConfig:
        return dataclasses.replace(self.unet, cross_attention_mode="reference", with_output_head=True)

    @property
    def reference_net(self) -> UNetConfig:
        return dataclasses.replace(self.unet, cross_attention_mode="self", with_output_head=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EMOConfig":
        return _from_dict(cls, data)


def _from_dict(cls, data: dict[str, Any]):
    """Rebuild a (nested) frozen dataclass from `dataclasses.asdict` output; unknown keys are errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in names else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def unet_config_from_dict(data: dict[str, Any]) -> UNetConfig:
    return _from_dict(UNetConfig, data)


TINY = EMOConfig(
    unet=UNetConfig(
        block_out_channels=(32, 64),
        down_attention=(True, False),
        layers_per_block=1,
        num_attention_heads=2,
        cross_attention_dim=32,
        norm_num_groups=8,
    ),
    temporal=TemporalConfig(num_attention_heads=2, max_seq_length=16, norm_num_groups=8),
    audio=AudioConfig(wav2vec_layers=3, wav2vec_dim=16, window=2, hidden_dim=32, tokens_per_frame=2, token_dim=24,
                      num_attention_heads=2),
    speed=SpeedConfig(num_buckets=4, window=2, feature_dim=16),
    face_locator=FaceLocatorConfig(block_channels=(4, 8, 8, 16)),
    diffusion=DiffusionConfig(sampling_steps=4),
    resolution=64,
    num_frames=3,
    num_motion_frames=2,
)

SD15 = EMOConfig()

PRESETS: dict[str, EMOConfig] = {"tiny": TINY, "sd15": SD15}


def preset(name: str) -> EMOConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
