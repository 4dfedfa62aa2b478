"""Speed layers' encoder (paper §3.2, "Face Locator and Speed Layers").

S ∈ R^{b×f×(2m+1)d}, the windowed speed-bucket embedding that `emoforge.labeling.speed`
computes, -> MLP -> speed features F ∈ R^{b×f×l}, plus fixed sinusoidal frame
positions so that the temporal cross-attention can tell the frames' speeds apart.
The cross-attention itself is `temporal.SpeedAttention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import SpeedConfig


def frame_positions(num_frames: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(f, dim) sin/cos features of the frame index."""
    position = torch.arange(num_frames, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_frames, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


class SpeedEncoder(nn.Module):
    def __init__(self, config: SpeedConfig):
        super().__init__()
        self.config = config
        self.linear_1 = nn.Linear(config.embedding_dim, config.feature_dim)
        self.linear_2 = nn.Linear(config.feature_dim, config.feature_dim)

    def forward(self, speed_embedding: torch.Tensor) -> torch.Tensor:
        """S (b, f, (2m+1)d) -> F (b, f, l)."""
        _, num_frames, dim = speed_embedding.shape
        if dim != self.config.embedding_dim:
            raise ValueError(f"speed embedding has {dim} values per frame, expected (2m+1)d = "
                             f"{self.config.embedding_dim}")
        features = self.linear_2(F.silu(self.linear_1(speed_embedding)))
        return features + frame_positions(num_frames, features.shape[-1], features.device).to(features.dtype)
