"""Our schedule and DDIM equal diffusers' DDIMScheduler (SD1.5 settings), step by step."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from emoforge.training.config import DiffusionConfig
from emoforge.training.ddim import ddim_sample, ddim_step, ddim_timesteps, previous_timestep
from emoforge.training.schedule import add_noise, alphas_cumprod, epsilon_loss


def sd15_scheduler() -> DDIMScheduler:
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def test_schedule_equals_diffusers():
    scheduler = sd15_scheduler()
    torch.testing.assert_close(alphas_cumprod(DiffusionConfig()).float(), scheduler.alphas_cumprod)
    z_0 = torch.randn(3, 4, 2, 8, 8)
    noise = torch.randn_like(z_0)
    t = torch.tensor([0, 500, 999])
    torch.testing.assert_close(add_noise(z_0, noise, t, alphas_cumprod(DiffusionConfig())),
                               scheduler.add_noise(z_0, noise, t))


@pytest.mark.parametrize("num_steps", [40, 7])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_equals_diffusers_step_by_step(num_steps, eta):
    scheduler = sd15_scheduler()
    scheduler.set_timesteps(num_steps)
    assert ddim_timesteps(num_steps).tolist() == scheduler.timesteps.tolist()

    alpha_bar = alphas_cumprod(DiffusionConfig())
    generator = torch.Generator().manual_seed(0)
    z_ours = z_theirs = torch.randn(2, 4, 3, 8, 8, generator=generator)
    for t in scheduler.timesteps.tolist():
        epsilon = torch.randn(z_ours.shape, generator=generator)  # stands in for ε_θ(z_t, t)
        noise = torch.randn(z_ours.shape, generator=generator)
        t_prev = previous_timestep(t, num_steps)
        z_ours = ddim_step(epsilon, z_ours, alpha_bar[t], alpha_bar[t_prev] if t_prev >= 0 else alpha_bar[0],
                           eta, noise)
        z_theirs = scheduler.step(epsilon, t, z_theirs, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(z_ours, z_theirs, rtol=1e-5, atol=1e-5)


def test_ddim_sample_loop_matches_scheduler_and_reports_progress():
    scheduler = sd15_scheduler()
    scheduler.set_timesteps(10)

    def epsilon_fn(z, t):  # a deterministic stand-in for the network
        return torch.tanh(z) * (t.float()[:, None, None, None, None] / 1000)

    z_T = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    seen = []
    ours = ddim_sample(epsilon_fn, z_T, alphas_cumprod(DiffusionConfig()), 10,
                       callback=lambda step, t, z: seen.append(t))
    z = z_T
    for t in scheduler.timesteps:
        z = scheduler.step(epsilon_fn(z, t.reshape(1)), t, z).prev_sample
    torch.testing.assert_close(ours, z, rtol=1e-5, atol=1e-5)
    assert seen == scheduler.timesteps.tolist()


def test_epsilon_loss_is_mean_squared_error():
    noise, prediction = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert epsilon_loss(noise, prediction).item() == pytest.approx(4.0)
