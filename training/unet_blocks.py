"""UNet building blocks of the Backbone and ReferenceNet (paper §3.2, SD1.5 layout).

Resnets, down/up-sampling, spatial transformers and the down/mid/up blocks, named as
diffusers' `UNet2DConditionModel` (`resnets.i`, `attentions.i`, `downsamplers.0.conv`,
`upsamplers.0.conv`) with AnimateDiff's `motion_modules.i` in the slots where
diffusers' `UNetMotionModel` puts them (after each resnet/attention pair; in the mid
block after the attention). Frames are folded into the batch, `(b f) c h w`, for
every 2-D layer; temporal modules unfold them.

Each block returns two kinds of features beside its output, both keyed by qualified
module name so a ReferenceNet and a Backbone built from the same config line up:
the self-attention inputs of its transformer blocks (for reference-attention) and
its hidden states at each temporal-module position (the motion-frame features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import TransformerBlock
from .config import CrossAttentionMode, TemporalConfig
from .temporal import TemporalTransformer


@dataclass(frozen=True)
class BlockInputs:
    """Everything a block reads besides its hidden states; shapes in the field comments."""

    temb: torch.Tensor  # ((b f), time_embed_dim)
    num_frames: int
    text: torch.Tensor | None = None  # (b, s, cross_attention_dim), text mode
    reference: dict[str, torch.Tensor] | None = None  # key -> (b, h*w, c), reference mode
    audio_tokens: torch.Tensor | None = None  # (b, f, k, c_audio)
    speed_features: torch.Tensor | None = None  # (b, f, l)
    motion: dict[str, torch.Tensor] | None = None  # key -> (b, c, n, h, w)
    use_temporal: bool = True


@dataclass
class BlockFeatures:
    attention: dict[str, torch.Tensor]  # transformer key -> ((b f), h*w, c) self-attention input
    positions: dict[str, torch.Tensor]  # motion-module key -> ((b f), c, h, w) hidden states

    def update(self, other: "BlockFeatures") -> None:
        self.attention.update(other.attention)
        self.positions.update(other.positions)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        residual = hidden_states if self.conv_shortcut is None else self.conv_shortcut(hidden_states)
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = hidden_states + rearrange(self.time_emb_proj(F.silu(temb)), "b c -> b c 1 1")
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        return residual + hidden_states


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(hidden_states)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, hidden_states: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # Nearest x2, or to the skip's size when the latent is not a multiple of 2^blocks.
        return self.conv(F.interpolate(hidden_states, size=size, mode="nearest"))


class SpatialTransformer(nn.Module):
    """diffusers' Transformer2DModel with a 1x1-conv projection (SD1.5's `use_linear_projection=False`)."""

    def __init__(self, channels: int, heads: int, groups: int, mode: CrossAttentionMode, text_dim: int,
                 audio_dim: int | None, audio_heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(channels, heads, mode, text_dim, audio_dim, audio_heads)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> tuple[torch.Tensor, dict]:
        _, _, height, width = hidden_states.shape
        residual = hidden_states
        tokens = rearrange(self.proj_in(self.norm(hidden_states)), "bf c h w -> bf (h w) c")
        features = {}
        for block in self.transformer_blocks:
            tokens, features[block.key] = block(
                tokens, num_frames=inputs.num_frames, text=inputs.text, reference=inputs.reference,
                audio_tokens=inputs.audio_tokens)
        hidden_states = self.proj_out(rearrange(tokens, "bf (h w) c -> bf c h w", h=height, w=width))
        return hidden_states + residual, features


@dataclass(frozen=True)
class BlockSpec:
    """What one UNet block holds; built by `UNet` from `UNetConfig`."""

    in_channels: int
    out_channels: int
    temb_channels: int
    num_layers: int
    attention: bool
    groups: int
    eps: float
    heads: int
    mode: CrossAttentionMode
    text_dim: int
    audio_dim: int | None
    audio_heads: int
    temporal: TemporalConfig | None
    speed_dim: int | None


def _attention(spec: BlockSpec, channels: int) -> SpatialTransformer:
    return SpatialTransformer(channels, spec.heads, spec.groups, spec.mode, spec.text_dim, spec.audio_dim,
                              spec.audio_heads)


def _motion_modules(spec: BlockSpec, channels: int, count: int) -> nn.ModuleList | None:
    if spec.temporal is None:
        return None
    return nn.ModuleList([TemporalTransformer(channels, spec.temporal, spec.speed_dim) for _ in range(count)])


class UNetBlock(nn.Module):
    """Shared per-layer step of down and up blocks: resnet -> [spatial transformer] -> [motion module]."""

    path = ""

    def _layer(self, index: int, hidden_states: torch.Tensor, inputs: BlockInputs,
               features: BlockFeatures) -> torch.Tensor:
        hidden_states = self.resnets[index](hidden_states, inputs.temb)
        if self.attentions is not None:
            hidden_states, attention_features = self.attentions[index](hidden_states, inputs)
            features.attention.update(attention_features)
        return self._temporal(f"{self.path}.motion_modules.{index}", index, hidden_states, inputs, features)

    def _temporal(self, key: str, index: int, hidden_states: torch.Tensor, inputs: BlockInputs,
                  features: BlockFeatures) -> torch.Tensor:
        features.positions[key] = hidden_states
        if self.motion_modules is not None and inputs.use_temporal:
            motion = inputs.motion.get(key) if inputs.motion is not None else None
            hidden_states = self.motion_modules[index](
                hidden_states, num_frames=inputs.num_frames, motion=motion, speed_features=inputs.speed_features)
        return hidden_states


class DownBlock(UNetBlock):
    def __init__(self, spec: BlockSpec, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock(spec.in_channels if i == 0 else spec.out_channels, spec.out_channels, spec.temb_channels,
                        spec.groups, spec.eps)
            for i in range(spec.num_layers)
        ])
        self.attentions = (nn.ModuleList([_attention(spec, spec.out_channels) for _ in range(spec.num_layers)])
                           if spec.attention else None)
        self.motion_modules = _motion_modules(spec, spec.out_channels, spec.num_layers)
        self.downsamplers = nn.ModuleList([Downsample(spec.out_channels)]) if add_downsample else None

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs
                ) -> tuple[torch.Tensor, list[torch.Tensor], BlockFeatures]:
        features = BlockFeatures({}, {})
        skips = []
        for index in range(len(self.resnets)):
            hidden_states = self._layer(index, hidden_states, inputs, features)
            skips.append(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
            skips.append(hidden_states)
        return hidden_states, skips, features


class UpBlock(UNetBlock):
    def __init__(self, spec: BlockSpec, prev_output_channels: int, add_upsample: bool):
        super().__init__()
        resnets = []
        for i in range(spec.num_layers):
            skip_channels = spec.in_channels if i == spec.num_layers - 1 else spec.out_channels
            resnet_in = prev_output_channels if i == 0 else spec.out_channels
            resnets.append(ResnetBlock(resnet_in + skip_channels, spec.out_channels, spec.temb_channels,
                                       spec.groups, spec.eps))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = (nn.ModuleList([_attention(spec, spec.out_channels) for _ in range(spec.num_layers)])
                           if spec.attention else None)
        self.motion_modules = _motion_modules(spec, spec.out_channels, spec.num_layers)
        self.upsamplers = nn.ModuleList([Upsample(spec.out_channels)]) if add_upsample else None

    def forward(self, hidden_states: torch.Tensor, skips: list[torch.Tensor], inputs: BlockInputs,
                upsample_size: tuple[int, int] | None) -> tuple[torch.Tensor, BlockFeatures]:
        """`skips` are this block's skip connections, consumed last-first."""
        features = BlockFeatures({}, {})
        for index in range(len(self.resnets)):
            hidden_states = torch.cat([hidden_states, skips[-1 - index]], dim=1)  # (b f) (c + c_skip) h w
            hidden_states = self._layer(index, hidden_states, inputs, features)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states, upsample_size)
        return hidden_states, features


class MidBlock(UNetBlock):
    """resnet -> spatial transformer -> [motion module] -> resnet."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        channels = spec.in_channels
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, spec.temb_channels, spec.groups, spec.eps)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([_attention(spec, channels)])
        self.motion_modules = _motion_modules(spec, channels, 1)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> tuple[torch.Tensor, BlockFeatures]:
        features = BlockFeatures({}, {})
        hidden_states = self.resnets[0](hidden_states, inputs.temb)
        hidden_states, features.attention = self.attentions[0](hidden_states, inputs)
        hidden_states = self._temporal(f"{self.path}.motion_modules.0", 0, hidden_states, inputs, features)
        return self.resnets[1](hidden_states, inputs.temb), features
