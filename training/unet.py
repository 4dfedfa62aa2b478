"""The UNet shared by EMO's Backbone and ReferenceNet (paper §3.1-3.2).

One class, three roles, chosen by `UNetConfig.cross_attention_mode`:
- "text": SD1.5's UNet itself (tested equal to diffusers' UNet2DConditionModel, and
  with temporal modules to diffusers' UNetMotionModel);
- "reference": the EMO Backbone, whose cross-attention slot attends to the
  ReferenceNet's features, with temporal modules, audio-attention and speed attention;
- "self": the ReferenceNet, run on single frames at t=0; it returns the features the
  Backbone consumes (no output head).

Inputs and outputs are `b c f h w`; 2-D layers see `(b f) c h w`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import TransformerBlock
from .config import TemporalConfig, UNetConfig
from .temporal import TemporalTransformer
from .unet_blocks import BlockFeatures, BlockInputs, BlockSpec, DownBlock, MidBlock, UpBlock


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = True,
                       freq_shift: float = 0.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features (DDPM, Ho et al. 2020, as in SD1.5): (b,) -> (b, dim)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    frequencies = torch.exp(exponent / (half - freq_shift))
    angles = timesteps.float()[:, None] * frequencies[None, :]  # b half
    sin, cos = torch.sin(angles), torch.cos(angles)
    return torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(nn.functional.silu(self.linear_1(features)))


@dataclass
class UNetOutput:
    sample: torch.Tensor | None  # (b, c, f, h, w); None for the head-less ReferenceNet
    features: BlockFeatures  # keyed by module name; tensors are ((b f), ...)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig, temporal: TemporalConfig | None = None,
                 audio_dim: int | None = None, audio_heads: int = 1, speed_dim: int | None = None):
        super().__init__()
        self.config = config
        self.temporal_config = temporal
        channels = config.block_out_channels
        num_blocks = len(channels)

        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], config.time_embed_dim)

        def spec(in_channels, out_channels, num_layers, attention, with_temporal=True):
            return BlockSpec(
                in_channels=in_channels, out_channels=out_channels, temb_channels=config.time_embed_dim,
                num_layers=num_layers, attention=attention, groups=config.norm_num_groups, eps=config.norm_eps,
                heads=config.num_attention_heads, mode=config.cross_attention_mode,
                text_dim=config.cross_attention_dim, audio_dim=audio_dim, audio_heads=audio_heads,
                temporal=temporal if with_temporal else None, speed_dim=speed_dim)

        self.down_blocks = nn.ModuleList()
        output_channels = channels[0]
        for i in range(num_blocks):
            input_channels, output_channels = output_channels, channels[i]
            self.down_blocks.append(DownBlock(
                spec(input_channels, output_channels, config.layers_per_block, config.down_attention[i]),
                add_downsample=i < num_blocks - 1))

        self.mid_block = MidBlock(spec(channels[-1], channels[-1], 1, True,
                                       with_temporal=temporal is not None and temporal.mid_block))

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(channels))
        up_attention = list(reversed(config.down_attention))
        output_channels = reversed_channels[0]
        for i in range(num_blocks):
            prev_output_channels, output_channels = output_channels, reversed_channels[i]
            input_channels = reversed_channels[min(i + 1, num_blocks - 1)]
            self.up_blocks.append(UpBlock(
                spec(input_channels, output_channels, config.layers_per_block + 1, up_attention[i]),
                prev_output_channels, add_upsample=i < num_blocks - 1))

        if config.with_output_head:
            self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
            self.conv_out = nn.Conv2d(channels[0], config.out_channels, 3, padding=1)

        # Training memory: recompute each block's activations in backward (enable_gradient_checkpointing).
        self.gradient_checkpointing = False

        # Name every block and module after its place, the key its features travel under.
        for name, module in self.named_modules():
            if isinstance(module, (TransformerBlock, TemporalTransformer)):
                module.key = name
            elif isinstance(module, (DownBlock, UpBlock, MidBlock)):
                module.path = name

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute every down/mid/up block in backward instead of storing its activations (the trainer's choice)."""
        self.gradient_checkpointing = enabled

    def _run_block(self, block: nn.Module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def transformer_keys(self) -> list[str]:
        return [m.key for m in self.modules() if isinstance(m, TransformerBlock)]

    def temporal_keys(self) -> list[str]:
        return [m.key for m in self.modules() if isinstance(m, TemporalTransformer)]

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, *, text: torch.Tensor | None = None,
                reference: dict[str, torch.Tensor] | None = None, audio_tokens: torch.Tensor | None = None,
                speed_features: torch.Tensor | None = None, motion: dict[str, torch.Tensor] | None = None,
                use_temporal: bool = True) -> UNetOutput:
        """sample (b, c, f, h, w), timestep (b,) or scalar -> UNetOutput.

        text (b, s, c_text) for text mode; reference {key: (b, h*w, c)} for reference
        mode; audio_tokens (b, f, k, c_audio); speed_features (b, f, l); motion
        {key: (b, c, n, h, w)} motion-frame features at the temporal modules.
        """
        batch, _, num_frames, height, width = sample.shape
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        temb = self.time_embedding(timestep_embedding(
            timestep, self.config.block_out_channels[0], self.config.flip_sin_to_cos, self.config.freq_shift
        ).to(sample.dtype))
        temb = repeat(temb, "b d -> (b f) d", f=num_frames)
        inputs = BlockInputs(temb=temb, num_frames=num_frames, text=text, reference=reference,
                             audio_tokens=audio_tokens, speed_features=speed_features, motion=motion,
                             use_temporal=use_temporal)

        hidden_states = self.conv_in(rearrange(sample, "b c f h w -> (b f) c h w"))
        features = BlockFeatures({}, {})
        skips = [hidden_states]
        for block in self.down_blocks:
            hidden_states, block_skips, block_features = self._run_block(block, hidden_states, inputs)
            skips.extend(block_skips)
            features.update(block_features)

        hidden_states, block_features = self._run_block(self.mid_block, hidden_states, inputs)
        features.update(block_features)

        for i, block in enumerate(self.up_blocks):
            count = len(block.resnets)
            block_skips, skips = skips[-count:], skips[:-count]
            upsample_size = tuple(skips[-1].shape[-2:]) if block.upsamplers is not None else None
            hidden_states, block_features = self._run_block(block, hidden_states, block_skips, inputs, upsample_size)
            features.update(block_features)

        if not self.config.with_output_head:
            return UNetOutput(sample=None, features=features)
        hidden_states = self.conv_out(nn.functional.silu(self.conv_norm_out(hidden_states)))
        sample = rearrange(hidden_states, "(b f) c h w -> b c f h w", b=batch, f=num_frames)
        return UNetOutput(sample=sample, features=features)
