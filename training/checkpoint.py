"""Training checkpoints: written atomically, resumable exactly (issue 6).

A run folder holds `run_config.json`, `metrics.jsonl`, `tensorboard/`, `validation/`
and `checkpoints/`:

    checkpoints/step-00000300/
        model/config.json, model/model.safetensors   the EMO network (training.io format)
        ema.safetensors                              EMA of the stage's trainable parameters
        optimizer.pt                                 AdamW state, keyed by parameter name
        rng.pt                                       every rank's RNG states (torch, CUDA, numpy, python, noise generator)
        state.json                                   step, EMA updates, merged data-stream state, world size
        run_config.json, speed_buckets.json          so the folder alone drives `emoforge animate`
    checkpoints/latest                               name of the newest complete checkpoint

A checkpoint is written into `.step-N.partial-PID/` and renamed into place, so a
crash (even SIGKILL) leaves either the whole folder or none; `latest` is replaced
atomically after the rename. `.pt` files hold only tensors, numbers and strings and are
read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from emoforge.errors import UserError

from .io import CONFIG_NAME, FORMAT as MODEL_FORMAT, WEIGHTS_NAME, _atomic

STATE_FORMAT = "emoforge.training.checkpoint/1"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def write_model_folder(folder: Path, model_config: dict, state: dict[str, torch.Tensor]) -> None:
    """The `training.io.save_model` layout from a (gathered, CPU) state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps({"format": MODEL_FORMAT, "config": model_config}, indent=2, sort_keys=True))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / WEIGHTS_NAME), metadata={"format": MODEL_FORMAT})


def save_checkpoint(run_dir: Path, step: int, *, model_config: dict, model_state: dict[str, torch.Tensor],
                    ema_state: dict[str, torch.Tensor], optimizer_state: dict, rng_states: list[dict],
                    state: dict, files: dict[str, Path], keep: int) -> Path:
    """Write checkpoint `step` atomically; keep the newest `keep` checkpoints. Rank 0 only."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    partial = root / f".{step_name(step)}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    write_model_folder(partial / "model", model_config, model_state)
    save_file({k: v.contiguous() for k, v in ema_state.items()}, str(partial / "ema.safetensors"))
    torch.save(optimizer_state, partial / "optimizer.pt")
    torch.save(rng_states, partial / "rng.pt")
    for name, source in files.items():
        shutil.copyfile(source, partial / name)
    (partial / "state.json").write_text(json.dumps({"format": STATE_FORMAT, "step": step, **state}, indent=1, sort_keys=True))
    _fsync_folder(partial)
    if final.exists():  # a resumed run passing a step an earlier attempt also saved
        stale = root / f".{step_name(step)}.stale-{os.getpid()}"
        os.replace(final, stale)
        os.replace(partial, final)
        shutil.rmtree(stale)
    else:
        os.replace(partial, final)
    _atomic(root / "latest", lambda path: path.write_text(final.name + "\n"))
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_folder(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (partial folders are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if (path / "state.json").is_file() and (path / "model").is_dir():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise UserError(f"{path} is neither a checkpoint (state.json + model/) nor a run folder with checkpoints")
    return latest


def read_state(checkpoint: Path) -> dict:
    state = json.loads((Path(checkpoint) / "state.json").read_text())
    if state.get("format") != STATE_FORMAT:
        raise UserError(f"{checkpoint} is not an emoforge training checkpoint ({state.get('format')!r})")
    return state


def load_ema(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint) / "ema.safetensors"))


def load_optimizer(checkpoint: Path) -> dict:
    return torch.load(Path(checkpoint) / "optimizer.pt", map_location="cpu", weights_only=True)


def load_rng(checkpoint: Path) -> list[dict]:
    return torch.load(Path(checkpoint) / "rng.pt", map_location="cpu", weights_only=True)


def clean_partials(run_dir: Path) -> None:
    """Remove what a killed run left half-written."""
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(".step-"):
                shutil.rmtree(path, ignore_errors=True)
