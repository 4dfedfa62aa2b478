"""Our UNet equals diffusers' UNet2DConditionModel / UNetMotionModel with the same weights."""

from __future__ import annotations

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

from emoforge.training.emo import initialize_weights
from emoforge.training.unet import UNet
from emoforge.training.weights import load_sd_unet, read_safetensors_folder, unet_config_from_diffusers


def test_unet2d_equals_diffusers_in_text_mode(sd_unet_folder):
    reference = UNet2DConditionModel.from_pretrained(sd_unet_folder).eval()
    ours = UNet(unet_config_from_diffusers(read_safetensors_folder(sd_unet_folder)[0])).eval()
    report = load_sd_unet(ours, sd_unet_folder)
    assert report.missing == [] and report.unexpected == [] and report.derived == {}

    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 5, 32, generator=generator)
    timestep = torch.tensor([10, 980])
    with torch.no_grad():
        expected = reference(sample, timestep, encoder_hidden_states=text).sample
        got = ours(sample[:, :, None], timestep, text=text).sample[:, :, 0]  # b c 1 h w -> b c h w
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_unet2d_handles_latents_not_divisible_by_the_blocks(sd_unet_folder):
    reference = UNet2DConditionModel.from_pretrained(sd_unet_folder).eval()
    ours = UNet(unet_config_from_diffusers(read_safetensors_folder(sd_unet_folder)[0])).eval()
    load_sd_unet(ours, sd_unet_folder)
    sample = torch.randn(1, 4, 7, 9, generator=torch.Generator().manual_seed(1))
    text = torch.randn(1, 3, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(sample, 500, encoder_hidden_states=text).sample
        got = ours(sample[:, :, None], torch.tensor([500]), text=text).sample[:, :, 0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def _motion_pair(sd_unet_folder, motion_adapter_folder, mode="text", audio_dim=None, speed_dim=None):
    import dataclasses

    from emoforge.training.config import TemporalConfig
    from emoforge.training.weights import load_motion_adapter

    unet2d = UNet2DConditionModel.from_pretrained(sd_unet_folder)
    adapter = MotionAdapter.from_pretrained(motion_adapter_folder)
    reference = UNetMotionModel.from_unet2d(unet2d, adapter).eval()
    config = dataclasses.replace(unet_config_from_diffusers(read_safetensors_folder(sd_unet_folder)[0]),
                                 cross_attention_mode=mode)
    temporal = TemporalConfig(num_attention_heads=2, max_seq_length=16, norm_num_groups=8)
    ours = UNet(config, temporal, audio_dim=audio_dim, audio_heads=2, speed_dim=speed_dim).eval()
    initialize_weights(ours)  # as EMO does before loading
    sd_report = load_sd_unet(ours, sd_unet_folder)
    motion_report = load_motion_adapter(ours, motion_adapter_folder)
    return reference, ours, sd_report, motion_report


def test_backbone_with_temporal_modules_equals_unet_motion_model(sd_unet_folder, motion_adapter_folder):
    reference, ours, sd_report, motion_report = _motion_pair(sd_unet_folder, motion_adapter_folder)
    # Between them the two folders fill every tensor of ours.
    assert set(sd_report.missing) == set(motion_report.loaded)
    assert set(motion_report.missing) == set(sd_report.loaded)

    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 4, 5, 8, 8, generator=generator)  # b c f h w
    text = torch.randn(2, 4, 32, generator=generator)
    timestep = torch.tensor([3, 700])
    with torch.no_grad():
        # UNetMotionModel takes the prompt already repeated per frame, as its pipeline does.
        expected = reference(sample, timestep, encoder_hidden_states=text.repeat_interleave(5, dim=0)).sample
        got = ours(sample, timestep, text=text).sample
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_new_audio_and_speed_branches_leave_unet_motion_model_unchanged(sd_unet_folder, motion_adapter_folder):
    """Audio-attention in every spatial block and speed attention in every temporal block, fed real inputs,
    change nothing at initialisation: the result is still diffusers' UNetMotionModel."""
    reference, ours, sd_report, motion_report = _motion_pair(sd_unet_folder, motion_adapter_folder,
                                                             audio_dim=24, speed_dim=16)
    new = set(sd_report.missing) & set(motion_report.missing)
    assert new and all(".audio_attention." in k or ".speed_attention." in k for k in new)

    generator = torch.Generator().manual_seed(4)
    sample = torch.randn(1, 4, 3, 8, 8, generator=generator)
    text = torch.randn(1, 4, 32, generator=generator)
    audio_tokens = torch.randn(1, 3, 2, 24, generator=generator)  # b f k c
    speed_features = torch.randn(1, 3, 16, generator=generator)  # b f l
    with torch.no_grad():
        expected = reference(sample, torch.tensor([250]), encoder_hidden_states=text.repeat_interleave(3, 0)).sample
        got = ours(sample, torch.tensor([250]), text=text, audio_tokens=audio_tokens,
                   speed_features=speed_features).sample
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
