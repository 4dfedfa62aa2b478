"""EMO's new branches start as the identity; reference-attention starts from self-attention."""

from __future__ import annotations

import torch

from emoforge.training.attention import TransformerBlock
from emoforge.training.config import TINY
from emoforge.training.emo import EMO


def _model(seed: int = 0) -> EMO:
    torch.manual_seed(seed)
    return EMO(TINY).eval()


def test_new_branches_at_initialisation_change_nothing(emo_inputs):
    model = _model()
    x = emo_inputs(TINY)
    with torch.no_grad():
        reference = model.encode_reference(x["reference_latent"], x["motion_latents"])
        plain = model(x["noisy_latents"], x["timestep"], reference, use_temporal=False)
        full = model(x["noisy_latents"], x["timestep"], reference, audio_windows=x["audio_windows"],
                     speed_embedding=x["speed_embedding"], face_mask=x["face_mask"])
    torch.testing.assert_close(full, plain, rtol=0, atol=0)


def _perturb(model: EMO, suffix: str, seed: int) -> int:
    generator = torch.Generator().manual_seed(seed)
    touched = 0
    with torch.no_grad():
        for key, parameter in model.named_parameters():
            if key.endswith(suffix):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
                touched += 1
    return touched


def test_trained_new_branches_do_change_the_output(emo_inputs):
    """The identity above is the zero-init, not dead code: give each zeroed layer weights and the output moves."""
    x = emo_inputs(TINY)
    temporal_out = "proj_out.weight"  # motion modules' output; spatial proj_out is 1x1 conv, excluded below

    def run(model):
        with torch.no_grad():
            reference = model.encode_reference(x["reference_latent"], x["motion_latents"])
            return model(x["noisy_latents"], x["timestep"], reference, audio_windows=x["audio_windows"],
                         speed_embedding=x["speed_embedding"], face_mask=x["face_mask"])

    def live_temporal_model():
        model = _model()
        with torch.no_grad():
            for module in model.backbone.modules():
                if type(module).__name__ == "TemporalTransformer":
                    module.proj_out.weight.normal_(0, 0.5)
        return model

    assert (run(live_temporal_model()) - run(_model())).abs().max() > 1e-3, temporal_out
    baseline = run(live_temporal_model())
    for suffix in ("face_locator.conv_out.weight", "audio_attention.attn.to_out.0.weight",
                   "speed_attention.attn.to_out.0.weight"):
        model = live_temporal_model()
        assert _perturb(model, suffix, seed=5) > 0, suffix
        assert (run(model) - baseline).abs().max() > 1e-3, suffix


def test_zeroed_layers_and_copied_reference_projections():
    model = _model()
    assert model.face_locator.conv_out.weight.abs().sum() == 0
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    assert {b.mode for b in blocks} == {"reference", "self"}
    for block in blocks:
        assert block.audio_attention is None or block.audio_attention.attn.to_out[0].weight.abs().sum() == 0
        torch.testing.assert_close(block.attn2.to_k.weight, block.attn1.to_k.weight, rtol=0, atol=0)
        torch.testing.assert_close(block.attn2.to_v.weight, block.attn1.to_v.weight, rtol=0, atol=0)
    assert all(m.proj_out.weight.abs().sum() == 0 for m in model.backbone.modules()
               if type(m).__name__ == "TemporalTransformer")


def test_reference_features_line_up_with_the_backbone(emo_inputs):
    model = _model()
    x = emo_inputs(TINY)
    with torch.no_grad():
        features = model.encode_reference(x["reference_latent"], x["motion_latents"])
        first_clip = model.encode_reference(x["reference_latent"])
    assert set(features.attention) == set(model.backbone.transformer_keys())
    assert set(features.motion) == set(model.backbone.temporal_keys())
    latent = TINY.resolution // 8
    key = "down_blocks.0.attentions.0.transformer_blocks.0"
    assert features.attention[key].shape == (2, latent * latent, TINY.unet.block_out_channels[0])
    motion = features.motion["up_blocks.1.motion_modules.0"]
    assert motion.shape == (2, TINY.unet.block_out_channels[0], TINY.num_motion_frames, latent, latent)
    assert all(v.abs().sum() == 0 for v in first_clip.motion.values())
    torch.testing.assert_close(first_clip.attention[key], features.attention[key])


def test_reference_image_and_motion_frames_drive_the_output(emo_inputs):
    """Reference-attention and the motion frames are live paths (once temporal weights are non-zero)."""
    model = _model()
    with torch.no_grad():
        for module in model.backbone.modules():
            if type(module).__name__ == "TemporalTransformer":
                module.proj_out.weight.normal_(0, 0.3)
    x = emo_inputs(TINY)
    y = emo_inputs(TINY, seed=1)
    with torch.no_grad():
        base = model(x["noisy_latents"], x["timestep"], model.encode_reference(x["reference_latent"],
                                                                               x["motion_latents"]))
        other_reference = model(x["noisy_latents"], x["timestep"],
                                model.encode_reference(y["reference_latent"], x["motion_latents"]))
        other_motion = model(x["noisy_latents"], x["timestep"],
                             model.encode_reference(x["reference_latent"], y["motion_latents"]))
    assert (base - other_reference).abs().max() > 1e-3
    assert (base - other_motion).abs().max() > 1e-3
