"""Loading SD1.5 / MotionAdapter / VAE / wav2vec2 folders: reports, derived keys, refusals; EMO folders round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from emoforge.training.config import TINY, EMOConfig, UNetConfig
from emoforge.training.emo import EMO
from emoforge.training.io import load_model, save_model
from emoforge.training.weights import load_motion_adapter, load_sd15_into_emo, load_sd_unet


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return EMO(TINY).eval()


def test_sd15_loads_into_backbone_and_reference_net(tiny_model, sd_unet_folder, motion_adapter_folder):
    reports = load_sd15_into_emo(tiny_model, sd_unet_folder)
    sd = load_file(sd_unet_folder / "diffusion_pytorch_model.safetensors")
    backbone, reference_net = reports["backbone"], reports["reference_net"]
    assert all(".audio_attention." in k or ".motion_modules." in k for k in backbone.missing)
    assert reference_net.missing == []
    assert {k for k in reference_net.unexpected if not k.startswith(("conv_out.", "conv_norm_out."))} == {
        k for k in sd if ".attn2.to_k." in k or ".attn2.to_v." in k}
    for key, source in backbone.derived.items():
        assert ".attn2." in key and source == key.replace(".attn2.", ".attn1.")
        torch.testing.assert_close(tiny_model.backbone.state_dict()[key], sd[source], rtol=0, atol=0)
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"
    torch.testing.assert_close(tiny_model.reference_net.state_dict()[key], sd[key], rtol=0, atol=0)

    motion = load_motion_adapter(tiny_model.backbone, motion_adapter_folder)
    assert motion.unexpected == [] and motion.loaded
    neither = set(motion.missing) & set(backbone.missing)  # EMO's new branches keep their zero-init
    assert all(".speed_attention." in k or ".audio_attention." in k for k in neither)
    assert any(".speed_attention." in k for k in neither) and any(".audio_attention." in k for k in neither)


def test_shape_mismatch_is_refused_with_every_offender_named(tmp_path, sd_unet_folder):
    state = load_file(sd_unet_folder / "diffusion_pytorch_model.safetensors")
    state["conv_in.weight"] = torch.zeros(32, 4, 1, 1)
    state["mid_block.resnets.0.conv1.bias"] = torch.zeros(7)
    save_file(state, tmp_path / "diffusion_pytorch_model.safetensors")
    (tmp_path / "config.json").write_text((sd_unet_folder / "config.json").read_text())
    torch.manual_seed(0)
    model = EMO(TINY)
    before = model.backbone.conv_in.weight.clone()
    with pytest.raises(ValueError, match=r"shape mismatch.*2 tensors") as error:
        load_sd_unet(model.backbone, tmp_path)
    assert "conv_in.weight" in str(error.value) and "mid_block.resnets.0.conv1.bias" in str(error.value)
    torch.testing.assert_close(model.backbone.conv_in.weight, before)  # nothing half-loaded


def test_wrong_layout_and_pickles_are_refused(tmp_path, sd_unet_folder, motion_adapter_folder):
    config = json.loads((sd_unet_folder / "config.json").read_text())
    wider = EMO(dataclasses.replace(TINY, unet=dataclasses.replace(TINY.unet, block_out_channels=(32, 96))))
    with pytest.raises(ValueError, match="block_out_channels"):
        load_sd_unet(wider.backbone, sd_unet_folder)
    with pytest.raises(ValueError, match="MotionAdapter"):
        load_motion_adapter(wider.backbone, sd_unet_folder)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="pickled"):
        load_sd_unet(wider.backbone, tmp_path)


def test_emo_folder_round_trips(tmp_path, tiny_model, emo_inputs):
    with torch.no_grad():
        for parameter in tiny_model.parameters():  # non-trivial values everywhere, zero-init layers included
            parameter.add_(torch.randn_like(parameter) * 0.01)
    folder = save_model(tiny_model, tmp_path / "emo")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(folder).eval()
    assert loaded.config == tiny_model.config
    x = emo_inputs(TINY, batch=1)
    with torch.no_grad():
        outputs = [m(x["noisy_latents"], x["timestep"], m.encode_reference(x["reference_latent"], x["motion_latents"]),
                     audio_windows=x["audio_windows"], speed_embedding=x["speed_embedding"], face_mask=x["face_mask"])
                   for m in (tiny_model, loaded)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_config_round_trips_and_rejects_unknown_keys():
    assert EMOConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    data = TINY.to_dict()
    data["unet"]["attention_heads"] = 4
    with pytest.raises(ValueError, match="attention_heads"):
        EMOConfig.from_dict(data)
    with pytest.raises(ValueError):
        UNetConfig(block_out_channels=(32, 64), down_attention=(True,))


def test_vae_folder_loads_with_a_report(tmp_path):
    from diffusers import AutoencoderKL

    from emoforge.training.weights import load_vae

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).save_pretrained(tmp_path)
    vae, report = load_vae(tmp_path)
    assert report.missing == [] and report.unexpected == [] and report.loaded
    assert vae.encode(torch.zeros(1, 3, 16, 16)).latent_dist.mean.shape == (1, 4, 16, 16)
