"""`trainable_parameters(model, stage)` follows paper §3.3, and what it picks does receive gradients."""

from __future__ import annotations

import pytest
import torch

from emoforge.training.config import TINY
from emoforge.training.emo import EMO
from emoforge.training.schedule import epsilon_loss
from emoforge.training.stages import GROUPS, parameter_groups, trainable_parameters


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EMO(TINY)


def test_every_parameter_in_exactly_one_group(model):
    groups = parameter_groups(model)
    names = [name for group in GROUPS for name in groups[group]]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())
    assert all(groups[g] for g in GROUPS)
    assert all(".speed_attention." in n for n in groups["speed"] if n.startswith("backbone."))
    assert all(".audio_attention." in n for n in groups["audio"] if n.startswith("backbone."))
    assert all(".motion_modules." in n and ".speed_attention." not in n for n in groups["temporal"])
    assert not any(".motion_modules." in n or "_attention." in n for n in groups["backbone"])


def test_stages_follow_the_paper(model):
    groups = {g: set(names) for g, names in parameter_groups(model).items()}
    stage = {s: set(trainable_parameters(model, s)) for s in (1, 2, 3)}
    assert stage[1] == groups["backbone"] | groups["reference_net"] | groups["face_locator"]
    assert stage[2] == stage[1] | groups["temporal"] | groups["audio"]
    assert stage[3] == groups["temporal"] | groups["speed"]
    assert not stage[3] & groups["audio"]  # audio layers frozen in stage 3
    trainable_parameters(model, 3)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == stage[3]
    with pytest.raises(ValueError):
        trainable_parameters(model, 4)


@pytest.mark.parametrize("stage", [2, 3])
def test_every_trainable_parameter_gets_a_gradient(emo_inputs, stage):
    torch.manual_seed(0)
    model = EMO(TINY)
    trainable = trainable_parameters(model, stage)
    x = emo_inputs(TINY, batch=1)
    reference = model.encode_reference(x["reference_latent"], x["motion_latents"])
    prediction = model(x["noisy_latents"], x["timestep"], reference, audio_windows=x["audio_windows"],
                       speed_embedding=x["speed_embedding"] if stage == 3 else None, face_mask=x["face_mask"])
    epsilon_loss(torch.randn_like(prediction), prediction).backward()
    no_grad = [n for n, p in trainable.items() if p.grad is None]
    assert no_grad == []
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
