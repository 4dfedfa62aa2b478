"""Audio layers' inputs: wav2vec2 features per frame and their projection to tokens (paper §3.2, "Audio Layers").

A^(f): the hidden states of every wav2vec2 layer at video frame f, concatenated.
𝐀^(f) = ⊕{A^(f-m), ..., A^(f), ..., A^(f+m)}: the window of ±m frames (m = 2).
`AudioProjection` maps each frame's window to a few tokens that the Backbone's
audio-attention attends to, frame by frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import AudioConfig


def wav2vec2_features(model: nn.Module, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Hidden states of all layers of a transformers Wav2Vec2Model at video frame rate.

    waveform (b, samples) at the model's rate (16 kHz, normalised as its feature
    extractor does) -> (b, num_frames, layers + 1, d). wav2vec2 runs at 50 Hz; its
    features are linearly resampled to the frames (25 fps: two per frame).
    """
    output = model(waveform, output_hidden_states=True)
    hidden = torch.stack(output.hidden_states, dim=1)  # b l t d
    if hidden.shape[2] != num_frames:
        hidden = rearrange(hidden, "b l t d -> b (l d) t")
        hidden = F.interpolate(hidden, size=num_frames, mode="linear", align_corners=True)
        hidden = rearrange(hidden, "b (l d) f -> b l f d", l=len(output.hidden_states))
    return rearrange(hidden, "b l f d -> b f l d")


def audio_windows(features: torch.Tensor, window: int) -> torch.Tensor:
    """(b, f, l, d) per-frame features -> (b, f, 2m+1, l, d) windows, edges repeated at the clip's ends."""
    frames = features.shape[1]
    offsets = torch.arange(-window, window + 1, device=features.device)
    index = (torch.arange(frames, device=features.device)[:, None] + offsets[None, :]).clamp(0, frames - 1)
    return features[:, index]  # b f w l d


class AudioProjection(nn.Module):
    """MLP from a frame's window of wav2vec2 features to `tokens_per_frame` audio tokens."""

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config
        in_dim = (2 * config.window + 1) * config.wav2vec_layers * config.wav2vec_dim
        self.proj1 = nn.Linear(in_dim, config.hidden_dim)
        self.proj2 = nn.Linear(config.hidden_dim, config.hidden_dim)
        self.proj3 = nn.Linear(config.hidden_dim, config.tokens_per_frame * config.token_dim)
        self.norm = nn.LayerNorm(config.token_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (b, f, 2m+1, l, d) -> tokens (b, f, k, c)."""
        hidden = rearrange(windows, "b f w l d -> b f (w l d)")
        hidden = F.silu(self.proj1(hidden))
        hidden = F.silu(self.proj2(hidden))
        tokens = rearrange(self.proj3(hidden), "b f (k c) -> b f k c", k=self.config.tokens_per_frame)
        return self.norm(tokens)
