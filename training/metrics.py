"""Training logs: one JSON line per step in `metrics.jsonl`, a line on stdout every `log_every` steps, TensorBoard.

TensorBoard event files are written with `torch.utils.tensorboard` when the
`tensorboard` package is installed (the `training` extra has it); without it the JSONL
file is the whole log. On resume, lines past the checkpoint's step (written by the
interrupted attempt) are dropped, and TensorBoard purges them too, so a resumed
run's log reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is lost too
    return rows


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int = 0, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.stream = stream or sys.stdout
        self.writer = None
        if not enabled:
            return
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= resume_step] if resume_step else []
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        partial.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(partial, self.path)
        self.handle = open(self.path, "a", buffering=1)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, step: int, values: dict, echo: bool) -> None:
        if not self.enabled:
            return
        row = {"step": step, **values}
        self.handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(name, value, step)
        if echo:
            shown = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            print(f"step {step} {shown}", file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
