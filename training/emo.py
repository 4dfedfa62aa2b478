"""The composed EMO network (paper §3.2, Fig. 2).

Frames encoding: the ReferenceNet runs once per clip on the reference latent and the
n motion-frame latents (at t = 0) and returns `ReferenceFeatures`. Diffusion process:
the Face Locator's encoding of the face mask is added to the noisy latents; the
Backbone denoises the f frames with reference-attention (to the reference
features), audio-attention (to the projected wav2vec2 windows), temporal modules
(motion-frame features joined on the frame axis) and speed attention (to the speed
features). Data flows through arguments only; `initialize_weights` is the one place
where every new branch is set to start as the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .attention import AudioAttention, TransformerBlock
from .audio import AudioProjection
from .config import EMOConfig
from .face_locator import FaceLocator
from .speed import SpeedEncoder
from .temporal import SpeedAttention, TemporalTransformer
from .unet import UNet


@dataclass
class ReferenceFeatures:
    """What the ReferenceNet hands the Backbone, keyed by the Backbone's module names."""

    attention: dict[str, torch.Tensor]  # transformer key -> (b, h*w, c): reference image, self-attention input
    motion: dict[str, torch.Tensor]  # motion-module key -> (b, c, n, h, w): motion frames at that position


def initialize_weights(module: nn.Module) -> None:
    """EMO's new branches start as the identity (STYLE rule 8), and reference-attention starts from self-attention.

    Zeroed: audio-attention and speed-attention outputs, temporal modules' `proj_out`,
    the Face Locator's last conv. Copied: the key/value projections of every
    reference-attention (and the ReferenceNet's second self-attention) from the same
    block's self-attention (DESIGN §4). Loading SD1.5 / AnimateDiff weights afterwards
    overwrites what they contain and keeps the rest.
    """
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (AudioAttention, SpeedAttention)):
                nn.init.zeros_(sub.attn.to_out[0].weight)
                nn.init.zeros_(sub.attn.to_out[0].bias)
            elif isinstance(sub, TemporalTransformer):
                nn.init.zeros_(sub.proj_out.weight)
                nn.init.zeros_(sub.proj_out.bias)
            elif isinstance(sub, FaceLocator):
                nn.init.zeros_(sub.conv_out.weight)
                nn.init.zeros_(sub.conv_out.bias)
            elif isinstance(sub, TransformerBlock) and sub.mode != "text":
                sub.attn2.to_k.weight.copy_(sub.attn1.to_k.weight)
                sub.attn2.to_v.weight.copy_(sub.attn1.to_v.weight)


class EMO(nn.Module):
    def __init__(self, config: EMOConfig):
        super().__init__()
        self.config = config
        self.reference_net = UNet(config.reference_net)
        self.backbone = UNet(config.backbone, config.temporal, audio_dim=config.audio.token_dim,
                             audio_heads=config.audio.num_attention_heads, speed_dim=config.speed.feature_dim)
        self.face_locator = FaceLocator(config.face_locator, config.unet.in_channels)
        self.audio_projection = AudioProjection(config.audio)
        self.speed_encoder = SpeedEncoder(config.speed)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        initialize_weights(self)

    def encode_reference(self, reference_latent: torch.Tensor,
                         motion_latents: torch.Tensor | None = None) -> ReferenceFeatures:
        """reference_latent (b, c, h, w), motion_latents (b, c, n, h, w) -> ReferenceFeatures.

        Without motion latents (the first clip of a video, or stage 1) the motion
        features are zero maps of n frames (paper §3.2).
        """
        batch = reference_latent.shape[0]
        frames = reference_latent[:, :, None]  # b c 1 h w
        if motion_latents is not None:
            frames = torch.cat([frames, motion_latents], dim=2)  # b c (1 + n) h w
        timestep = torch.zeros(batch, dtype=torch.int64, device=reference_latent.device)
        features = self.reference_net(frames, timestep).features

        attention = {key: rearrange(value, "(b f) m c -> b f m c", b=batch)[:, 0]
                     for key, value in features.attention.items()}
        motion = {}
        for key in self.backbone.temporal_keys():
            video = rearrange(features.positions[key], "(b f) c h w -> b c f h w", b=batch)
            if motion_latents is not None:
                motion[key] = video[:, :, 1:]
            else:
                motion[key] = video.new_zeros(video.shape[:2] + (self.config.num_motion_frames,) + video.shape[3:])
        return ReferenceFeatures(attention=attention, motion=motion)

    def forward(self, noisy_latents: torch.Tensor, timestep: torch.Tensor, reference: ReferenceFeatures, *,
                audio_windows: torch.Tensor | None = None, speed_embedding: torch.Tensor | None = None,
                face_mask: torch.Tensor | None = None, use_temporal: bool = True) -> torch.Tensor:
        """ε_θ(z_t, t, c): noisy_latents (b, c, f, h, w) -> predicted noise (b, c, f, h, w).

        audio_windows (b, f, 2m+1, layers, d) (see `audio.audio_windows`);
        speed_embedding S (b, f, (2m+1)d); face_mask (b, 1, H, W) at pixel size.
        Stage 1 passes single frames with `use_temporal=False` and no audio or speed.
        """
        if face_mask is not None:
            located = self.face_locator(face_mask)  # b c h w
            noisy_latents = noisy_latents + rearrange(located, "b c h w -> b c 1 h w")
        audio_tokens = self.audio_projection(audio_windows) if audio_windows is not None else None
        speed_features = self.speed_encoder(speed_embedding) if speed_embedding is not None else None
        output = self.backbone(
            noisy_latents, timestep, reference=reference.attention, audio_tokens=audio_tokens,
            speed_features=speed_features if use_temporal else None,
            motion=reference.motion if use_temporal else None, use_temporal=use_temporal)
        return output.sample
