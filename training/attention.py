"""Attention layers of the Backbone and ReferenceNet (paper §3.2, "Backbone Network", "Audio Layers").

State-dict names follow diffusers' `Attention` / `FeedForward` / `BasicTransformerBlock`
(`to_q`, `to_k`, `to_v`, `to_out.0`, `ff.net.0.proj`, `ff.net.2`, `norm1..3`) so SD1.5
weights load unchanged. One spatial transformer block is

    self-attention -> cross-attention slot -> [audio-attention] -> feed-forward,

where the cross-attention slot is text attention (SD1.5), reference-attention (EMO
Backbone: attends to the ReferenceNet's self-attention input of the same block) or a
second self-attention (EMO ReferenceNet, which has no prompt). Audio-attention is EMO's
new branch (zero-initialised output, `EMO.initialize_weights`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from .config import CrossAttentionMode


class Attention(nn.Module):
    """Multi-head scaled dot-product attention; `context=None` makes it self-attention."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 bias: bool = False):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(context_dim or query_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(context_dim or query_dim, inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim)])

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = hidden_states if context is None else context
        query = rearrange(self.to_q(hidden_states), "b n (h d) -> b h n d", h=self.heads)
        key = rearrange(self.to_k(context), "b m (h d) -> b h m d", h=self.heads)
        value = rearrange(self.to_v(context), "b m (h d) -> b h m d", h=self.heads)
        out = F.scaled_dot_product_attention(query, key, value)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.to_out[0](out)


class GEGLU(nn.Module):
    """GELU-gated linear unit (Shazeer 2020), SD1.5's feed-forward activation."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(hidden_states).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        # net.1 is diffusers' (parameter-free) dropout slot; keeping the index keeps the keys.
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            hidden_states = layer(hidden_states)
        return hidden_states


class AudioAttention(nn.Module):
    """EMO audio-attention (§3.2 "Audio Layers"): each frame's tokens attend to that frame's audio tokens.

    New branch: `attn.to_out` is zero-initialised in `EMO.initialize_weights`, so a
    freshly added layer adds nothing.
    """

    def __init__(self, dim: int, audio_dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim // heads, context_dim=audio_dim)

    def forward(self, hidden_states: torch.Tensor, audio_tokens: torch.Tensor) -> torch.Tensor:
        # hidden_states: ((b f), h*w, c); audio_tokens: (b, f, k, c_audio)
        audio = rearrange(audio_tokens, "b f k c -> (b f) k c")
        return hidden_states + self.attn(self.norm(hidden_states), audio)


class TransformerBlock(nn.Module):
    """One SD1.5 transformer block with EMO's cross-attention slot and optional audio-attention.

    `key` is the block's qualified name inside its UNet; the ReferenceNet returns its
    features under that name and the Backbone's block of the same name attends to them.
    """

    def __init__(self, dim: int, heads: int, mode: CrossAttentionMode, text_dim: int,
                 audio_dim: int | None = None, audio_heads: int = 1):
        super().__init__()
        self.mode = mode
        self.key = ""
        dim_head = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        # Reference-attention and the ReferenceNet's second self-attention read `dim`-wide
        # features, text attention reads `text_dim`-wide tokens.
        self.attn2 = Attention(dim, heads, dim_head, context_dim=text_dim if mode == "text" else dim)
        self.audio_attention = AudioAttention(dim, audio_dim, audio_heads) if audio_dim else None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, hidden_states: torch.Tensor, *, num_frames: int, text: torch.Tensor | None = None,
                reference: dict[str, torch.Tensor] | None = None,
                audio_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden_states ((b f), h*w, c) -> (same shape, the self-attention input feature)."""
        self_attention_input = self.norm1(hidden_states)
        hidden_states = hidden_states + self.attn1(self_attention_input)

        if self.mode == "text":
            if text is None:
                raise ValueError("a text-mode transformer block needs `text` tokens")
            context = repeat(text, "b s c -> (b f) s c", f=num_frames)
        elif self.mode == "reference":
            if reference is None or self.key not in reference:
                raise ValueError(f"reference-attention block {self.key!r} got no ReferenceNet feature")
            context = repeat(reference[self.key], "b m c -> (b f) m c", f=num_frames)
        else:
            context = None  # ReferenceNet: a second self-attention
        hidden_states = hidden_states + self.attn2(self.norm2(hidden_states), context)

        if self.audio_attention is not None and audio_tokens is not None:
            hidden_states = self.audio_attention(hidden_states, audio_tokens)

        hidden_states = hidden_states + self.ff(self.norm3(hidden_states))
        return hidden_states, self_attention_input
