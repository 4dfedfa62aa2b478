"""`emoforge animate` on a tiny checkpoint, the long-video loop, and the commands' argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from training_runs import tiny_run_config

from emoforge.cli import main
from emoforge.training.loop import Trainer

AUDIO_SECONDS = 0.7


@pytest.fixture(scope="module")
def tiny_run(tiny_shards, tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny_run")
    Trainer(tiny_run_config(tiny_shards, "train.max_steps=1", "train.checkpoint_every=1"), tiny_shards, run,
            device="cpu", say=lambda m: None).fit()
    return run


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import cv2
    import soundfile
    from skimage import data

    folder = tmp_path_factory.mktemp("inputs")
    cv2.imwrite(str(folder / "face.png"), cv2.cvtColor(data.astronaut()[:, 56:456], cv2.COLOR_RGB2BGR))  # 512 x 400
    t = np.arange(int(AUDIO_SECONDS * 16000)) / 16000
    soundfile.write(str(folder / "speech.wav"), (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    return folder


def test_animate_writes_mp4_with_audio_of_the_right_duration(tiny_run, inputs, tmp_path, capsys):
    import av

    out = tmp_path / "out.mp4"
    code = main(["animate", "--checkpoint", str(tiny_run), "--image", str(inputs / "face.png"), "--audio",
                 str(inputs / "speech.wav"), "-o", str(out), "--face-box", "150,40,330,260", "--steps", "2",
                 "--seed", "3", "--speed", "10", "--audio-guidance", "2", "--reference-guidance", "1.5",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    expected_frames = math.ceil(AUDIO_SECONDS * 25)  # 18 frames = 6 chained clips of f = 3
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (64, 64)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(out)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        audio_rate = container.streams.audio[0].rate
    assert len(frames) == expected_frames
    assert abs(len(frames) / 25 - AUDIO_SECONDS) < 1 / 25
    assert abs(samples / audio_rate - AUDIO_SECONDS) < 0.1  # AAC adds at most a frame of padding
    assert not list(tmp_path.glob(".*partial*")), "no temporary file is left behind"


def test_long_video_loop_chains_clips_through_motion_frames(tiny_run):
    """generate_clips hands each clip's last n latents to the next clip as motion frames."""
    from emoforge.training.animate import Conditions, generate_clips, load_checkpoint_model
    from emoforge.training.latents import make_latent_codec

    model, config, _ = load_checkpoint_model(tiny_run)
    codec = make_latent_codec(config.latents)
    f, n = config.model.num_frames, config.model.num_motion_frames
    frames = 2 * f + 1
    conditions = Conditions(torch.randn(1, 4, 8, 8), torch.randn(1, frames, 5, 1, 320), torch.ones(1, 1, 64, 64), None)
    seen = []
    original = model.encode_reference

    def spy(reference_latent, motion_latents=None):
        seen.append(None if motion_latents is None else motion_latents.clone())
        return original(reference_latent, motion_latents)

    model.encode_reference = spy
    clips = list(generate_clips(model, codec, conditions, config, steps=1, audio_scale=1.0, reference_scale=1.0))
    assert [clip.shape[1] for clip in clips] == [f, f, 1]
    # guided sampling encodes (ref, ∅-ref) per clip: first clip without motion, later clips with n motion latents
    assert seen[0] is None and seen[1] is None
    assert all(m is not None and m.shape[2] == n for m in seen[2:])


@pytest.mark.parametrize("argv, message", [
    (["train", "--stage", "4", "--shards", "x", "--config", "tiny", "--out", "o"], "argument --stage"),
    (["train", "--stage", "2", "--shards", "x", "--config", "nosuch", "--out", "o"], "neither a preset"),
    (["train", "--stage", "2", "--shards", "SHARDS", "--config", "tiny", "--out", "o", "--set", "train.nope=1"],
     "unknown setting 'train.nope'"),
    (["train", "--stage", "2", "--shards", "SHARDS", "--config", "tiny", "--out", "o", "--set", "train.learning_rate=fast"],
     "not a valid float"),
    (["train", "--stage", "2", "--shards", "SHARDS", "--config", "tiny", "--out", "o", "--set", "train.precision=fp8"],
     "train.precision is one of"),
    (["train", "--stage", "2", "--shards", "/nonexistent/train-*.tar", "--config", "tiny", "--out", "o"], "no shards"),
    (["animate", "--checkpoint", "RUN", "--image", "/nonexistent.png", "--audio", "AUDIO", "-o", "x.mp4"], "no such file"),
    (["animate", "--checkpoint", "RUN", "--image", "IMAGE", "--audio", "AUDIO", "-o", "x.mp4", "--face-box", "1,2,3"],
     "--face-box"),
    (["animate", "--checkpoint", "RUN", "--image", "IMAGE", "--audio", "AUDIO", "-o", "x.avi"], "is an .mp4 file"),
    (["animate", "--checkpoint", "/nonexistent", "--image", "IMAGE", "--audio", "AUDIO", "-o", "x.mp4"],
     "neither a checkpoint"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tiny_shards, tiny_run, inputs, tmp_path, capsys):
    replace = {"SHARDS": str(tiny_shards), "RUN": str(tiny_run), "IMAGE": str(inputs / "face.png"),
               "AUDIO": str(inputs / "speech.wav"), "o": str(tmp_path / "o"), "x.mp4": str(tmp_path / "x.mp4")}
    argv = [replace.get(a, a) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_resume_with_another_config_is_refused(tiny_run, tiny_shards, capsys):
    code = main(["train", "--stage", "2", "--shards", str(tiny_shards), "--config", "tiny", "--out", str(tiny_run),
                 "--resume", "--set", "train.learning_rate=0.1"])
    assert code == 2 and "another config" in capsys.readouterr().err
    code = main(["train", "--stage", "2", "--shards", str(tiny_shards), "--config", "tiny", "--out", str(tiny_run)])
    assert code == 2 and "already holds checkpoints" in capsys.readouterr().err
