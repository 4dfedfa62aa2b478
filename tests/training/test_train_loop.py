"""The training loop on tiny shards: stages train exactly their parameters, logs, checkpoints, validation."""

from __future__ import annotations

import json

import pytest
import torch
from training_runs import tiny_run_config

from emoforge.errors import UserError
from emoforge.training.emo import EMO
from emoforge.training.loop import Trainer
from emoforge.training.stages import STAGES, parameter_groups


@pytest.fixture(scope="module")
def stage_runs(tiny_shards, tmp_path_factory):
    """Two optimizer steps of each stage from the same initialisation."""
    runs = {}
    for stage in (1, 2, 3):
        config = tiny_run_config(tiny_shards, "train.max_steps=2", stage=stage)
        trainer = Trainer(config, tiny_shards, tmp_path_factory.mktemp(f"stage{stage}"), device="cpu", say=lambda m: None)
        rows = trainer.fit()
        runs[stage] = (config, trainer, rows)
    return runs


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_trains_only_its_parameters(stage_runs, stage):
    config, trainer, rows = stage_runs[stage]
    torch.manual_seed(config.train.seed)
    initial = EMO(config.model).state_dict()  # the trainer's initialisation (same seed, same order)
    trained = dict(trainer.model.named_parameters())
    groups = parameter_groups(trainer.model)
    owner = {name: group for group, names in groups.items() for name in names}
    changed_trainable, total_trainable = 0, 0
    for name, value in trained.items():
        value = value.detach()
        if owner[name] in STAGES[stage]:
            total_trainable += 1
            changed_trainable += not torch.equal(value, initial[name])
        else:
            assert torch.equal(value, initial[name]), f"stage {stage}: frozen {name} changed"
    # AdamW's decoupled weight decay moves every non-zero trainable tensor; zero-initialised ones move once
    # gradients reach them. Nearly all must have moved.
    assert changed_trainable >= 0.9 * total_trainable, (changed_trainable, total_trainable)
    assert [row["step"] for row in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in rows)


def test_run_folder_holds_config_logs_checkpoint(stage_runs):
    config, trainer, _ = stage_runs[2]
    run = trainer.run_dir
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["train"]["stage"] == 2 and saved["model"]["audio"]["wav2vec_dim"] == 320
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    checkpoint = run / "checkpoints" / "step-00000002"
    for name in ("model/config.json", "model/model.safetensors", "ema.safetensors", "optimizer.pt", "rng.pt",
                 "state.json", "run_config.json", "speed_buckets.json"):
        assert (checkpoint / name).is_file(), name
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000002"


def test_validation_video_and_gradient_checkpointing(tiny_shards, tmp_path):
    import av

    config = tiny_run_config(tiny_shards, "train.max_steps=1", "train.validate_every=1", "train.gradient_checkpointing=true",
                             "train.validation_seconds=0.3", "train.validation_steps=1", "train.grad_accumulation=2")
    Trainer(config, tiny_shards, tmp_path, device="cpu", say=lambda m: None).fit()
    video = tmp_path / "validation" / "step-00000001.mp4"
    with av.open(str(video)) as container:
        assert container.streams.audio, "the validation video carries the clip's audio"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == round(0.3 * 25)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_shards):
    from emoforge.training.objective import Denoiser, ModelInputs, diffusion_loss, draw
    from emoforge.training.schedule import alphas_cumprod

    config = tiny_run_config(tiny_shards)
    torch.manual_seed(0)
    model = EMO(config.model)
    for parameter in model.parameters():  # leave the zero-initialisation so every branch carries gradient
        torch.nn.init.normal_(parameter, std=0.05)
    b, f, n = 2, config.model.num_frames, config.model.num_motion_frames
    generator = torch.Generator().manual_seed(0)
    inputs = ModelInputs(torch.randn(b, 4, f, 8, 8, generator=generator), torch.randn(b, 4, 8, 8, generator=generator),
                         torch.randn(b, 4, n, 8, 8, generator=generator),
                         torch.randn(b, f, 5, 1, 320, generator=generator), None, torch.ones(b, 1, 64, 64))
    draws = draw(inputs, config, torch.Generator().manual_seed(1))
    gradients = []
    for enabled in (False, True):
        model.zero_grad()
        model.backbone.enable_gradient_checkpointing(enabled)
        model.reference_net.enable_gradient_checkpointing(enabled)
        diffusion_loss(Denoiser(model), inputs, draws, alphas_cumprod(config.model.diffusion)).backward()
        gradients.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        torch.testing.assert_close(gradients[1][name], gradients[0][name], rtol=1e-5, atol=1e-6, msg=name)


def test_data_model_mismatch_is_a_user_error(tiny_shards, tmp_path):
    config = tiny_run_config(tiny_shards, "train.max_steps=1", "model.audio.wav2vec_dim=16", "model.audio.wav2vec_layers=3")
    with pytest.raises(UserError, match="model.audio.wav2vec_layers=1 model.audio.wav2vec_dim=320"):
        Trainer(config, tiny_shards, tmp_path / "a", device="cpu", say=lambda m: None).fit()
    config = tiny_run_config(tiny_shards, "train.max_steps=1", "model.speed.num_buckets=7", stage=3)
    with pytest.raises(UserError, match="model.speed.num_buckets="):
        Trainer(config, tiny_shards, tmp_path / "b", device="cpu", say=lambda m: None).fit()
