"""A run killed with SIGKILL and resumed continues with exactly the losses of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from emoforge.training import checkpoint as ckpt


def _train(shards, out, *extra, resume=False):
    buckets = json.loads((shards / "speed_buckets.json").read_text())
    command = [sys.executable, "-m", "emoforge.cli", "train", "--stage", "2", "--shards", str(shards), "--config", "tiny",
               "--out", str(out), "--device", "cpu", "--set", "train.max_steps=7", "train.checkpoint_every=3",
               "train.batch_size=2", "train.log_every=1", "train.validate_every=0", "data.num_workers=1",
               "data.shuffle_buffer=4", f"model.speed.num_buckets={len(buckets['centres_deg_per_s'])}", *extra]
    if resume:
        command.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(row["step"], row["loss"]) for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_sigkill_then_resume_matches_uninterrupted(tiny_shards, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _train(tiny_shards, straight)
    victim = _train(tiny_shards, killed)
    deadline = time.monotonic() + 60
    while not (killed / "checkpoints" / "step-00000003" / "state.json").is_file():
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert ckpt.latest_checkpoint(killed).name in ("step-00000003", "step-00000006")
    logged_before_kill = len(_losses(killed))
    assert logged_before_kill < 7, "the run finished before it was killed"

    resumed = _train(tiny_shards, killed, resume=True)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "resumed from" in err
    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err

    expected = _losses(straight)
    assert [step for step, _ in expected] == list(range(1, 8))
    assert _losses(killed) == expected  # every step once, bit-identical losses
    final_a = load_file(str(straight / "checkpoints" / "step-00000007" / "model" / "model.safetensors"))
    final_b = load_file(str(killed / "checkpoints" / "step-00000007" / "model" / "model.safetensors"))
    assert all((final_a[k] == final_b[k]).all() for k in final_a)
    ema_a = load_file(str(straight / "checkpoints" / "step-00000007" / "ema.safetensors"))
    ema_b = load_file(str(killed / "checkpoints" / "step-00000007" / "ema.safetensors"))
    assert all((ema_a[k] == ema_b[k]).all() for k in ema_a)


def test_partial_checkpoints_are_never_resumed(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step-00000004").mkdir(parents=True)
    (root / "step-00000004" / "state.json").write_text("{}")
    (root / ".step-00000008.partial-123").mkdir()  # killed while writing
    (root / "step-00000009").mkdir()  # no state.json: not a complete checkpoint
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000004"
    ckpt.clean_partials(tmp_path)
    assert not (root / ".step-00000008.partial-123").exists()
