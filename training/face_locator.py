"""Face Locator (paper §3.2, "Face Locator and Speed Layers").

Light convolutions encode the face-region mask M (the union of the clip's face
boxes, at pixel size) down x8 to the latent's size and channels; the result is added
to the noisy latent before the Backbone. The last conv is zero-initialised
(`EMO.initialize_weights`), so at first the mask changes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FaceLocatorConfig


class FaceLocator(nn.Module):
    def __init__(self, config: FaceLocatorConfig, latent_channels: int):
        super().__init__()
        channels = config.block_channels
        self.conv_in = nn.Conv2d(config.mask_channels, channels[0], 3, padding=1)
        blocks = []
        for current, following in zip(channels[:-1], channels[1:]):
            blocks.append(nn.Conv2d(current, current, 3, padding=1))
            blocks.append(nn.Conv2d(current, following, 3, padding=1, stride=2))  # h w -> h/2 w/2
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(channels[-1], latent_channels, 3, padding=1)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask (b, 1, H, W) in [0, 1] -> (b, c_latent, H/8, W/8)."""
        hidden = F.silu(self.conv_in(mask))
        for block in self.blocks:
            hidden = F.silu(block(hidden))
        return self.conv_out(hidden)
