"""From a shards batch to EMO's inputs, and the training objective of each stage (paper §3.1 eq. 1, §3.3).

`prepare_inputs` turns the streaming dataset's batch (docs/format.md) into latents and
conditions on the device: frames -> latents (VAE or pool8), audio features (b, f,
2m+1, *S) -> windows (b, f, 2m+1, L, D) standardised, speed (b, f, (2m+1)d) in stage 3.
`Denoiser` is the module the trainer wraps in DDP/FSDP: one forward runs the
ReferenceNet and the Backbone. `diffusion_loss` is eq. 1 with condition dropout, all
randomness from one explicit generator (so a resumed run draws what the first would).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from emoforge.errors import UserError
from emoforge.shards.pixels import i420_to_unit_rgb

from .emo import EMO
from .guidance import condition_dropout, drop_conditions
from .run_config import RunConfig
from .schedule import add_noise, epsilon_loss


@dataclass
class ModelInputs:
    latents: torch.Tensor  # z_0 of the frames to denoise: (b, 4, f, h, w); stage 1: f = 1
    reference_latent: torch.Tensor  # (b, 4, h, w)
    motion_latents: torch.Tensor | None  # (b, 4, n, h, w); stage 1: None
    audio_windows: torch.Tensor | None  # (b, f, 2m+1, L, D); stage 1: None
    speed_embedding: torch.Tensor | None  # (b, f, (2m+1)d); stage 3 only
    face_mask: torch.Tensor  # (b, 1, H, W)

    @property
    def use_temporal(self) -> bool:
        return self.motion_latents is not None


def pixels(tensor: torch.Tensor, device: torch.device, video: bool) -> torch.Tensor:
    """A batch's pictures -> float32 RGB in [-1, 1] on the device, ``(b, 3, [f,] H, W)``.

    The dataset's layouts (docs/format.md): float RGB ``(b, 3, [f,] H, W)`` in [-1, 1]; uint8
    RGB of that shape (normalised here: 4x less traffic); uint8 I420 ``(b, [f,] 3H/2, W)``
    (one axis fewer: converted here, half the bytes of RGB).
    """
    tensor = tensor.to(device, non_blocking=True)
    if tensor.dtype != torch.uint8:
        return tensor.float()
    if tensor.dim() == (4 if video else 3):  # I420 planes
        rgb = i420_to_unit_rgb(tensor)  # (b, [f,] 3, H, W)
        return rearrange(rgb, "b f c h w -> b c f h w") if video else rgb
    return tensor.float() / 127.5 - 1.0


def audio_windows_from_features(audio: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """(b, f, 2m+1, *S) shard audio features -> standardised (b, f, 2m+1, L, D) for `AudioProjection`.

    Log-mel per frame is S = (320,): one "layer" of 320 values (L=1, D=320);
    cached wav2vec2 states are S = (L, D). The model config must say the same.
    """
    expected = (config.model.audio.wav2vec_layers, config.model.audio.wav2vec_dim)
    feature_shape = tuple(audio.shape[3:])
    shape = (1, feature_shape[0]) if len(feature_shape) == 1 else feature_shape
    if shape != expected or audio.shape[2] != 2 * config.model.audio.window + 1:
        raise UserError(
            f"the shards' audio features are {tuple(audio.shape[2:])} per frame (window, *features) but the model "
            f"expects ({2 * config.model.audio.window + 1}, {expected[0]}, {expected[1]}): set "
            f"model.audio.wav2vec_layers={shape[0]} model.audio.wav2vec_dim={shape[-1]}, or add matching cached "
            f"features with `emoforge shards features --audio ...`")
    windows = audio.reshape(*audio.shape[:3], *shape).float()
    return (windows - config.data.audio_feature_mean) / config.data.audio_feature_std


def speed_from_batch(speed: torch.Tensor, config: RunConfig) -> torch.Tensor:
    expected = config.model.speed.embedding_dim
    if speed.shape[-1] != expected:
        d = speed.shape[-1] // (2 * config.model.speed.window + 1)
        raise UserError(f"the shards' speed embedding has {speed.shape[-1]} values per frame (d = {d} buckets), the "
                        f"model expects {expected}: set model.speed.num_buckets={d}")
    return speed.float()


def prepare_inputs(batch: dict, codec, config: RunConfig, device: torch.device) -> ModelInputs:
    stage = config.train.stage
    n = config.model.num_motion_frames
    face_mask = batch["face_mask"].to(device, non_blocking=True).float()
    if stage == 1:
        frames = torch.stack([pixels(batch["target"], device, False), pixels(batch["reference"], device, False)], dim=2)
        latents = codec.encode(frames)  # b 4 2 h w
        return ModelInputs(latents=latents[:, :, :1], reference_latent=latents[:, :, 1], motion_latents=None,
                           audio_windows=None, speed_embedding=None, face_mask=face_mask)
    if "latents" in batch:  # cached VAE latents (shards features pass)
        video = batch["latents"].to(device, non_blocking=True).float()  # b 4 (n+f) h w
        reference_latent = batch["reference_latent"].to(device, non_blocking=True).float()
    else:
        frames = torch.cat([pixels(batch["frames"], device, True), pixels(batch["reference"], device, False)[:, :, None]], dim=2)
        encoded = codec.encode(frames)  # b 4 (n+f+1) h w
        video, reference_latent = encoded[:, :, :-1], encoded[:, :, -1]
    audio = audio_windows_from_features(batch["audio"].to(device, non_blocking=True), config)
    speed = speed_from_batch(batch["speed"].to(device, non_blocking=True), config) if stage == 3 else None
    return ModelInputs(latents=video[:, :, n:], reference_latent=reference_latent,
                       motion_latents=video[:, :, :n] if n > 0 else None, audio_windows=audio,
                       speed_embedding=speed, face_mask=face_mask)


class Denoiser(nn.Module):
    """ε_θ(z_t, t, c) in one forward: ReferenceNet on the reference (and motion frames), then the Backbone."""

    def __init__(self, model: EMO):
        super().__init__()
        self.model = model

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, reference_latent: torch.Tensor,
                motion_latents: torch.Tensor | None, audio_windows: torch.Tensor | None,
                speed_embedding: torch.Tensor | None, face_mask: torch.Tensor, use_temporal: bool) -> torch.Tensor:
        reference = self.model.encode_reference(reference_latent, motion_latents)
        return self.model(noisy_latents, timesteps, reference, audio_windows=audio_windows,
                          speed_embedding=speed_embedding, face_mask=face_mask, use_temporal=use_temporal)


@dataclass
class Draws:
    """The random part of one training step: ε, t and which conditions are dropped."""

    noise: torch.Tensor
    timesteps: torch.Tensor
    keep_audio: torch.Tensor
    keep_reference: torch.Tensor


def draw(inputs: ModelInputs, config: RunConfig, generator: torch.Generator) -> Draws:
    """All on the CPU from `generator`, then moved: identical draws on any device."""
    batch = inputs.latents.shape[0]
    diffusion = config.model.diffusion
    noise = torch.randn(inputs.latents.shape, generator=generator)
    timesteps = torch.randint(0, diffusion.num_train_timesteps, (batch,), generator=generator)
    keep_audio, keep_reference = condition_dropout(batch, diffusion.audio_dropout, diffusion.reference_dropout, generator)
    device = inputs.latents.device
    return Draws(noise.to(device), timesteps.to(device), keep_audio.to(device), keep_reference.to(device))


def diffusion_loss(denoiser: nn.Module, inputs: ModelInputs, draws: Draws, alpha_bar: torch.Tensor,
                   drop: bool = True) -> torch.Tensor:
    """Eq. 1: ||ε - ε_θ(z_t, t, c)||² with z_t = sqrt(ᾱ_t) z_0 + sqrt(1 - ᾱ_t) ε; conditions dropped per sample."""
    reference_latent, audio = inputs.reference_latent, inputs.audio_windows
    if drop:
        if audio is not None:
            audio, reference_latent = drop_conditions(audio, reference_latent, draws.keep_audio, draws.keep_reference)
        else:
            keep = draws.keep_reference.to(reference_latent.dtype).reshape(-1, 1, 1, 1)
            reference_latent = reference_latent * keep
    noisy = add_noise(inputs.latents, draws.noise, draws.timesteps, alpha_bar)
    prediction = denoiser(noisy, draws.timesteps, reference_latent, inputs.motion_latents, audio,
                          inputs.speed_embedding, inputs.face_mask, inputs.use_temporal)
    return epsilon_loss(draws.noise, prediction)
