"""SD1.5's noise schedule and EMO's training objective (paper §3.1, eq. 1).

Notation: ᾱ_t = prod_{s<=t} (1 - β_s) (`alphas_cumprod`), z_t the noisy latent,
ε the noise, ε_θ the network's prediction. Pure functions of tensors.
"""

from __future__ import annotations

import torch

from .config import DiffusionConfig


def scaled_linear_betas(config: DiffusionConfig) -> torch.Tensor:
    """SD1.5's "scaled_linear" β_t: linear in sqrt(β) from beta_start to beta_end, float64."""
    return torch.linspace(config.beta_start ** 0.5, config.beta_end ** 0.5, config.num_train_timesteps,
                          dtype=torch.float64) ** 2


def alphas_cumprod(config: DiffusionConfig) -> torch.Tensor:
    """ᾱ_t for t = 0 .. T-1 (float64; callers cast)."""
    return torch.cumprod(1.0 - scaled_linear_betas(config), dim=0)


def _per_sample(values: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather ᾱ at each sample's t and shape it to broadcast over `like` (b, ...)."""
    gathered = values.to(like.device)[timesteps].to(like.dtype)
    return gathered.reshape(-1, *([1] * (like.ndim - 1)))


def add_noise(z_0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
              alpha_bar: torch.Tensor) -> torch.Tensor:
    """Forward process q(z_t | z_0): z_t = sqrt(ᾱ_t) z_0 + sqrt(1 - ᾱ_t) ε (DDPM eq. 4)."""
    a = _per_sample(alpha_bar, timesteps, z_0)
    return a.sqrt() * z_0 + (1.0 - a).sqrt() * noise


def epsilon_loss(noise: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """L = E ||ε - ε_θ(z_t, t, c)||² (eq. 1), averaged over every element, in float32."""
    return torch.mean((noise.float() - prediction.float()) ** 2)


def sample_timesteps(batch: int, config: DiffusionConfig, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """t ~ U{0, ..., T-1}, one per sample."""
    return torch.randint(0, config.num_train_timesteps, (batch,), generator=generator, device=device)
