"""Pixels <-> latents for training and sampling (paper §3.1: the diffusion runs in SD's VAE latent space).

`VaeLatents`: a frozen diffusers AutoencoderKL (`latents.vae_dir`), posterior mean x
scaling factor, as SD and the shards' `features` pass compute them.
`PooledLatents` (`latents.kind=pool8`): the fallback when no VAE weights exist (tiny
preset, tests, CPU demo). z = s · P · avgpool8(x), P a fixed 4x3 matrix with
orthonormal columns; decode x̂ = upsample8(Pᵀ z / s). It has a VAE's latent geometry
(4 channels at H/8 x W/8), so the network is unchanged, and decode(encode(x)) is x's
8x8 block means exactly. It is no learned code: details below 8 pixels are lost.

Both take and return video tensors `b c f h w` (frames in [-1, 1]); they hold no
trainable parameters and never choose a device (they follow the input's).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from emoforge.errors import UserError

from .run_config import LatentConfig


class PooledLatents:
    kind = "pool8"
    factor = 8

    def __init__(self, scaling_factor: float = 2.3, projection_seed: int = 0, channels: int = 4):
        generator = torch.Generator().manual_seed(projection_seed)
        gaussian = torch.randn(channels, 3, generator=generator, dtype=torch.float64)
        projection, _ = torch.linalg.qr(gaussian)  # (4, 3), orthonormal columns: Pᵀ P = I
        self.projection = projection.float()
        self.scaling_factor = float(scaling_factor)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, 3, f, H, W) in [-1, 1] -> (b, 4, f, H/8, W/8)."""
        batch = pixels.shape[0]
        pooled = F.avg_pool2d(rearrange(pixels.float(), "b c f h w -> (b f) c h w"), self.factor)
        latents = torch.einsum("kc,nchw->nkhw", self.projection.to(pooled.device), pooled) * self.scaling_factor
        return rearrange(latents, "(b f) k h w -> b k f h w", b=batch)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(b, 4, f, h, w) -> (b, 3, f, 8h, 8w), clamped to [-1, 1]."""
        batch = latents.shape[0]
        flat = rearrange(latents.float(), "b k f h w -> (b f) k h w") / self.scaling_factor
        rgb = torch.einsum("kc,nkhw->nchw", self.projection.to(flat.device), flat)
        rgb = F.interpolate(rgb, scale_factor=self.factor, mode="nearest")
        return rearrange(rgb.clamp(-1, 1), "(b f) c h w -> b c f h w", b=batch)

    def record(self) -> dict:
        return {"kind": self.kind, "scaling_factor": self.scaling_factor}


class VaeLatents:
    kind = "vae"
    factor = 8

    def __init__(self, vae_dir: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 batch_frames: int = 16):
        from .weights import load_vae

        folder = Path(vae_dir)
        if not (folder / "config.json").is_file():
            raise UserError(f"{folder} is not a diffusers AutoencoderKL folder (no config.json)")
        self.vae, _report = load_vae(folder)
        self.vae.requires_grad_(False).eval().to(device=device, dtype=dtype)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.config_sha256 = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
        self.batch_frames = batch_frames

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = pixels.shape[0]
        flat = rearrange(pixels, "b c f h w -> (b f) c h w")
        parameter = next(self.vae.parameters())
        chunks = [self.vae.encode(chunk.to(parameter.device, parameter.dtype)).latent_dist.mean
                  for chunk in flat.split(self.batch_frames)]
        latents = torch.cat(chunks).float() * self.scaling_factor
        return rearrange(latents, "(b f) k h w -> b k f h w", b=batch)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        batch = latents.shape[0]
        flat = rearrange(latents, "b k f h w -> (b f) k h w") / self.scaling_factor
        parameter = next(self.vae.parameters())
        chunks = [self.vae.decode(chunk.to(parameter.device, parameter.dtype)).sample
                  for chunk in flat.split(self.batch_frames)]
        return rearrange(torch.cat(chunks).float().clamp(-1, 1), "(b f) c h w -> b c f h w", b=batch)

    def record(self) -> dict:
        return {"kind": self.kind, "scaling_factor": self.scaling_factor, "vae_config_sha256": self.config_sha256}


def make_latent_codec(config: LatentConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    if config.kind == "pool8":
        return PooledLatents(config.scaling_factor, config.projection_seed)
    if not config.vae_dir:
        raise UserError("this config trains in a VAE's latent space: give --vae DIR (a diffusers AutoencoderKL "
                        "folder), or use the pool8 fallback with --set latents.kind=pool8 latents.scaling_factor=2.3")
    return VaeLatents(config.vae_dir, device, dtype)
