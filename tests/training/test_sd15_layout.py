"""The sd15 preset, built on the meta device, has SD1.5's and AnimateDiff's keys and shapes plus EMO's branches."""

from __future__ import annotations

import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel

from emoforge.training.config import SD15
from emoforge.training.emo import EMO
from emoforge.training.stages import parameter_counts


def _shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {k[len(prefix):]: tuple(v.shape) for k, v in module.state_dict().items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def meta_models():
    with torch.device("meta"):
        sd15 = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        adapter = MotionAdapter(motion_max_seq_length=32)
        emo = EMO(SD15)
    return sd15, adapter, emo


def test_backbone_is_sd15_plus_animatediff_plus_new_branches(meta_models):
    sd15, adapter, emo = meta_models
    sd, motion, backbone = _shapes(sd15), _shapes(adapter), _shapes(emo, "backbone.")
    assert set(sd) <= set(backbone) and set(motion) <= set(backbone)
    assert not set(sd) & set(motion)
    for key, shape in motion.items():
        assert backbone[key] == shape, key
    reshaped = {k for k in sd if backbone[k] != sd[k]}
    # Reference-attention reads c-wide ReferenceNet features, not 768-wide text (DESIGN §4).
    assert reshaped == {k for k in sd if ".attn2.to_k." in k or ".attn2.to_v." in k}
    for key in reshaped:
        assert backbone[key] == backbone[key.replace(".attn2.", ".attn1.")]
    new = set(backbone) - set(sd) - set(motion)
    assert new and all(".audio_attention." in k or ".speed_attention." in k for k in new)
    # 16 spatial blocks x audio, 21 motion modules x speed; each: norm w/b, q, k, v, out w/b
    assert len(new) == (16 + 21) * 7


def test_reference_net_is_sd15_without_the_output_head(meta_models):
    sd15, _, emo = meta_models
    sd, reference_net = _shapes(sd15), _shapes(emo, "reference_net.")
    head = {k for k in sd if k.startswith(("conv_norm_out.", "conv_out."))}
    assert set(reference_net) == set(sd) - head
    assert {k for k in reference_net if reference_net[k] != sd[k]} == {
        k for k in reference_net if ".attn2.to_k." in k or ".attn2.to_v." in k}


def test_parameter_counts(meta_models):
    sd15, adapter, emo = meta_models
    counts = parameter_counts(emo)
    sd_count = sum(p.numel() for p in sd15.parameters())
    motion_count = sum(p.numel() for p in adapter.parameters())
    assert sd_count == 859_520_964  # SD1.5's UNet
    text_kv = sum(p.numel() for n, p in sd15.named_parameters() if ".attn2.to_k." in n or ".attn2.to_v." in n)
    reference_kv = sum(p.numel() for n, p in emo.backbone.named_parameters()
                       if (".attn2.to_k." in n or ".attn2.to_v." in n) and ".motion_modules." not in n)
    assert counts["backbone"] == sd_count - text_kv + reference_kv
    assert counts["temporal"] == motion_count
    print("sd15 parameter counts:", counts, "total", sum(counts.values()))
