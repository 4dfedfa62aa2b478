"""Temporal modules with motion frames and speed attention (paper §3.2, "Temporal Modules", "Speed Layers").

AnimateDiff motion modules: the feature map `b c f h w` is reshaped to
`(b h w) f c` and attends across frames. State-dict names match diffusers'
`AnimateDiffTransformer3D` inside a `MotionAdapter` (`norm`, `proj_in`,
`transformer_blocks.k.{norm1,attn1,norm2,attn2,norm3,ff,pos_embed.pe}`, `proj_out`), so
AnimateDiff weights load unchanged.

EMO additions:
- motion frames: the ReferenceNet's features of the n motion frames at the same
  position are concatenated before the f frames on the frame axis at the module's
  input and sliced off after, so the clip continues the previous one;
- speed attention: each temporal block cross-attends (frames to frames) to the speed
  features F (b, f, l) repeated over (h w); its output is zero-initialised.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import nn

from .attention import Attention, FeedForward
from .config import TemporalConfig


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos frame positions added before each temporal attention (a persistent buffer `pe`)."""

    def __init__(self, dim: int, max_seq_length: int):
        super().__init__()
        position = torch.arange(max_seq_length).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_seq_length, dim)
        pe[0, :, 0::2] = torch.sin(position * frequency)
        pe[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", pe)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        num_frames = tokens.shape[1]
        if num_frames > self.pe.shape[1]:
            raise ValueError(f"{num_frames} frames exceed the temporal max_seq_length {self.pe.shape[1]}")
        return tokens + self.pe[:, :num_frames]


class SpeedAttention(nn.Module):
    """EMO speed layers' cross-attention: frames attend to the clip's speed features F (b, f, l)."""

    def __init__(self, dim: int, speed_dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim // heads, context_dim=speed_dim)

    def forward(self, tokens: torch.Tensor, speed_features: torch.Tensor) -> torch.Tensor:
        # tokens: ((b h w), n + f, c); speed_features: (b, f, l)
        spatial = tokens.shape[0] // speed_features.shape[0]
        context = repeat(speed_features, "b f l -> (b s) f l", s=spatial)  # F repeated to (b h w) f l
        return tokens + self.attn(self.norm(tokens), context)


class TemporalTransformerBlock(nn.Module):
    """AnimateDiff's block: two position-aware self-attentions over frames, [speed attention], feed-forward."""

    def __init__(self, dim: int, heads: int, max_seq_length: int, speed_dim: int | None):
        super().__init__()
        self.pos_embed = SinusoidalPositions(dim, max_seq_length)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim // heads)
        self.speed_attention = SpeedAttention(dim, speed_dim, heads) if speed_dim else None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, tokens: torch.Tensor, speed_features: torch.Tensor | None) -> torch.Tensor:
        tokens = tokens + self.attn1(self.pos_embed(self.norm1(tokens)))
        tokens = tokens + self.attn2(self.pos_embed(self.norm2(tokens)))
        if self.speed_attention is not None and speed_features is not None:
            tokens = self.speed_attention(tokens, speed_features)
        return tokens + self.ff(self.norm3(tokens))


class TemporalTransformer(nn.Module):
    """One motion module (diffusers' AnimateDiffTransformer3D) with EMO's motion frames.

    Its output projection `proj_out` is zero-initialised (`EMO.initialize_weights`), so
    before AnimateDiff weights are loaded the module is the identity.
    """

    def __init__(self, channels: int, config: TemporalConfig, speed_dim: int | None):
        super().__init__()
        self.key = ""
        self.norm = nn.GroupNorm(config.norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([
            TemporalTransformerBlock(channels, config.num_attention_heads, config.max_seq_length,
                                     speed_dim if config.speed_attention else None)
            for _ in range(config.transformer_layers)
        ])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, hidden_states: torch.Tensor, *, num_frames: int, motion: torch.Tensor | None = None,
                speed_features: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states ((b f), c, h, w), motion (b, c, n, h, w) or None -> ((b f), c, h, w)."""
        video = rearrange(hidden_states, "(b f) c h w -> b c f h w", f=num_frames)
        num_motion = 0
        if motion is not None:
            num_motion = motion.shape[2]
            video = torch.cat([motion, video], dim=2)  # b c (n + f) h w
        batch, _, _, height, width = video.shape

        tokens = rearrange(self.norm(video), "b c f h w -> (b h w) f c")
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, speed_features)
        tokens = self.proj_out(tokens)
        video = video + rearrange(tokens, "(b h w) f c -> b c f h w", b=batch, h=height, w=width)

        video = video[:, :, num_motion:]  # slice the motion frames off: b c f h w
        return rearrange(video, "b c f h w -> (b f) c h w")
