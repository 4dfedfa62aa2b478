"""DDIM sampling (Song et al. 2021) as EMO samples at inference (paper §4.1: 40 steps).

Pure functions in the DDIM paper's notation, with SD1.5's conventions: "leading"
timestep spacing shifted by `steps_offset`, and ᾱ_prev = ᾱ_0 after the last step
(`set_alpha_to_one=False`). The sampler is separate from the model: it takes any
`epsilon_fn(z_t, t) -> ε_θ` (the guided EMO forward, see `guidance.py`).
"""

from __future__ import annotations

from typing import Callable

import torch


def ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000, steps_offset: int = 1) -> torch.Tensor:
    """τ_S > ... > τ_1: every (T // S)-th step, "leading" spacing, + steps_offset (int64)."""
    if not 0 < num_steps <= num_train_timesteps:
        raise ValueError(f"need 0 < steps <= {num_train_timesteps}, got {num_steps}")
    ratio = num_train_timesteps // num_steps
    return (torch.arange(num_steps, dtype=torch.int64) * ratio).flip(0) + steps_offset


def previous_timestep(t: int, num_steps: int, num_train_timesteps: int = 1000) -> int:
    """τ_{i-1} = τ_i - T // S; negative means "the end", where ᾱ_prev = ᾱ_0."""
    return t - num_train_timesteps // num_steps


def ddim_step(epsilon: torch.Tensor, z_t: torch.Tensor, alpha_bar_t: torch.Tensor | float,
              alpha_bar_prev: torch.Tensor | float, eta: float = 0.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM update z_t -> z_{t-1} (DDIM eq. 12, with σ from eq. 16).

    ẑ_0 = (z_t - sqrt(1 - ᾱ_t) ε_θ) / sqrt(ᾱ_t)                     ("predicted x_0")
    σ_t = η sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_prev)     (eq. 16)
    z_{t-1} = sqrt(ᾱ_prev) ẑ_0 + sqrt(1 - ᾱ_prev - σ_t²) ε_θ + σ_t ε  (eq. 12)
    """
    alpha_bar_t = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    alpha_bar_prev = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
    z_0_hat = (z_t - (1 - alpha_bar_t).sqrt().item() * epsilon) / alpha_bar_t.sqrt().item()
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt().item()
    direction = (1 - alpha_bar_prev - sigma ** 2).sqrt().item() * epsilon
    z_prev = alpha_bar_prev.sqrt().item() * z_0_hat + direction
    if eta > 0:
        if noise is None:
            raise ValueError("a stochastic DDIM step (eta > 0) needs its noise")
        z_prev = z_prev + sigma * noise
    return z_prev


def ddim_sample(epsilon_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z_T: torch.Tensor,
                alpha_bar: torch.Tensor, num_steps: int, *, steps_offset: int = 1, eta: float = 0.0,
                generator: torch.Generator | None = None,
                callback: Callable[[int, int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Run S DDIM steps from z_T; `callback(step, t, z_{t-1})` after each step."""
    num_train = alpha_bar.shape[0]
    z_t = z_T
    for step, t in enumerate(ddim_timesteps(num_steps, num_train, steps_offset).tolist()):
        t_prev = previous_timestep(t, num_steps, num_train)
        alpha_bar_prev = alpha_bar[t_prev] if t_prev >= 0 else alpha_bar[0]
        timestep = torch.full((z_t.shape[0],), t, dtype=torch.int64, device=z_t.device)
        epsilon = epsilon_fn(z_t, timestep)
        noise = None
        if eta > 0:
            noise = torch.randn(z_t.shape, generator=generator, dtype=z_t.dtype, device=z_t.device)
        z_t = ddim_step(epsilon, z_t, alpha_bar[t], alpha_bar_prev, eta, noise)
        if callback is not None:
            callback(step, t, z_t)
    return z_t
