"""Condition dropout for classifier-free guidance, and guidance with separate audio and reference scales.

Training drops each sample's audio (its wav2vec2 windows set to zero) and reference
(its reference latent set to zero before the ReferenceNet) independently, so that
the network also learns ε_θ without them. Sampling combines three predictions:

    ε̂ = ε(∅, ∅) + s_ref · (ε(ref, ∅) - ε(∅, ∅)) + s_audio · (ε(ref, audio) - ε(ref, ∅))

(reference guidance, then audio guidance on top of it); s_ref = s_audio = 1 gives
the plain conditional prediction.
"""

from __future__ import annotations

from typing import Callable

import torch


def condition_dropout(batch: int, audio_p: float, reference_p: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep_audio, keep_reference), boolean (b,), each dropped independently with its probability."""
    draws = torch.rand(2, batch, generator=generator)
    return draws[0] >= audio_p, draws[1] >= reference_p


def drop_conditions(audio_windows: torch.Tensor, reference_latent: torch.Tensor, keep_audio: torch.Tensor,
                    keep_reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the dropped samples' audio windows (b, f, w, l, d) and reference latents (b, c, h, w)."""
    audio = audio_windows * keep_audio.to(audio_windows.device, audio_windows.dtype).reshape(-1, 1, 1, 1, 1)
    reference = reference_latent * keep_reference.to(reference_latent.device,
                                                     reference_latent.dtype).reshape(-1, 1, 1, 1)
    return audio, reference


def guided_epsilon(epsilon_uncond: torch.Tensor, epsilon_reference: torch.Tensor, epsilon_full: torch.Tensor,
                   reference_scale: float, audio_scale: float) -> torch.Tensor:
    return (epsilon_uncond + reference_scale * (epsilon_reference - epsilon_uncond)
            + audio_scale * (epsilon_full - epsilon_reference))


def guided_epsilon_fn(model, reference_latent: torch.Tensor, audio_windows: torch.Tensor, *,
                      motion_latents: torch.Tensor | None = None, speed_embedding: torch.Tensor | None = None,
                      face_mask: torch.Tensor | None = None, reference_scale: float, audio_scale: float
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`epsilon_fn(z_t, t)` for `ddim.ddim_sample`: the ReferenceNet runs once, the Backbone once per step on 3b."""
    zero_audio = torch.zeros_like(audio_windows)
    conditioned = model.encode_reference(reference_latent, motion_latents)
    unconditioned = model.encode_reference(torch.zeros_like(reference_latent), motion_latents)
    # Batch order: (∅, ∅), (ref, ∅), (ref, audio).
    reference = type(conditioned)(
        attention={k: torch.cat([unconditioned.attention[k], conditioned.attention[k], conditioned.attention[k]])
                   for k in conditioned.attention},
        motion={k: torch.cat([unconditioned.motion[k], conditioned.motion[k], conditioned.motion[k]])
                for k in conditioned.motion})
    audio = torch.cat([zero_audio, zero_audio, audio_windows])

    def triple(x):
        return None if x is None else torch.cat([x, x, x])

    def epsilon_fn(z_t: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        epsilon = model(triple(z_t), triple(timestep), reference, audio_windows=audio,
                        speed_embedding=triple(speed_embedding), face_mask=triple(face_mask))
        uncond, reference_only, full = epsilon.chunk(3)
        return guided_epsilon(uncond, reference_only, full, reference_scale, audio_scale)

    return epsilon_fn
