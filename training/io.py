"""Saving and loading EMO models as folders: config.json + model.safetensors, no pickle (issue 6).

The folder holds the resolved `EMOConfig` (so a checkpoint rebuilds its own network)
and the full state dict. Loading is strict: a missing, unexpected or reshaped tensor
is an error, since a folder written here must round-trip exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from .config import EMOConfig
from .emo import EMO

FORMAT = "emoforge.training.EMO/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_model(model: EMO, folder: str | Path) -> Path:
    """Write `folder/config.json` and `folder/model.safetensors`, each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "config": model.config.to_dict()}
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    _atomic(folder / CONFIG_NAME, lambda path: path.write_text(json.dumps(config, indent=2, sort_keys=True)))
    _atomic(folder / WEIGHTS_NAME, lambda path: save_file(state, str(path), metadata={"format": FORMAT}))
    return folder


def load_config(folder: str | Path) -> EMOConfig:
    data = json.loads((Path(folder) / CONFIG_NAME).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{folder} is not an EMO model folder (format {data.get('format')!r}, expected {FORMAT!r})")
    return EMOConfig.from_dict(data["config"])


def load_model(folder: str | Path) -> EMO:
    """Rebuild the EMO of a folder written by `save_model` (on the CPU; the caller places it)."""
    model = EMO(load_config(folder))
    state = load_file(str(Path(folder) / WEIGHTS_NAME))
    expected = model.state_dict()
    problems = sorted(set(expected) ^ set(state)) + sorted(
        k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if problems:
        raise ValueError(f"{folder} does not match its config.json: {problems[:10]}")
    model.load_state_dict(state, strict=True)
    return model


def _atomic(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
