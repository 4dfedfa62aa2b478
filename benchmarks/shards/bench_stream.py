"""Stage-2 streaming throughput per dataloader worker at 512² with decoding, and peak worker memory.

    .venv/bin/python benchmarks/shards/bench_stream.py --out /tmp/emoforge-bench-shards

Makes (once, cached in --out) a synthetic curated corpus of 512x512, 25 fps clips encoded
as curation encodes them (`emoforge.media.clip_video_options`: crf 18, a keyframe every 12
frames, no B-frames, x264 `fastdecode`; `--gop` and `--no-fast-decode` vary it), or takes a
real curation output with `--curated DIR`, builds shards, then reads them with one torch
DataLoader worker (`num_workers=1`, batch_size=None) and reports samples per second after
the first `--warmup` samples, the worker's own CPU time per sample, and its peak resident
memory (VmHWM). Results as one JSON line (append it to docs/performance.md by hand).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from emoforge.media import clip_video_options
from emoforge.shards.config import ShardsConfig
from emoforge.shards.dataset import ShardDataset
from emoforge.shards.sampling import SampleConfig
from emoforge.shards.synthetic import write_clip
from emoforge.shards.writer import build_shards


class _Epochs(IterableDataset):
    """Loop a ShardDataset over epochs inside the worker (a small corpus, many samples)."""

    def __init__(self, dataset: ShardDataset, epochs: int):
        self.dataset, self.epochs = dataset, epochs

    def __iter__(self):
        for epoch in range(self.epochs):
            self.dataset.set_epoch(epoch)
            yield from self.dataset


def make_corpus(folder: Path, clips: int, seconds: float, gop: int, fast_decode: bool) -> Path:
    import pandas as pd

    options = clip_video_options(18, gop, fast_decode)
    encoding = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]  # a new encoding: a new corpus
    curated = folder / f"curated-{clips}x{seconds}s-gop{gop}{'-fastdecode' if fast_decode else ''}-{encoding}"
    if (curated / "manifest.parquet").is_file():
        return curated
    rng = np.random.default_rng(0)
    rows = []
    for index in range(clips):
        source = f"bench{index:03d}"
        clip_id = f"{source}-0000000-{int(seconds * 25):07d}"
        write_clip(curated / "clips", clip_id, source, int(seconds * 25), 512, rng, gop_frames=gop, fast_decode=fast_decode)
        rows.append({"row_kind": "clip", "clip_id": clip_id, "source_id": source, "status": "kept", "reason": None})
    pd.DataFrame(rows).to_parquet(curated / "manifest.parquet", index=False)
    return curated


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run(args) -> dict:
    folder = Path(args.out)
    if args.curated:
        curated = Path(args.curated).resolve()
        shards = folder / f"shards-{curated.parent.name}-{curated.name}"
    else:
        curated = make_corpus(folder, args.clips, args.seconds, args.gop, not args.no_fast_decode)
        shards = folder / f"shards-{curated.name}"
    build_shards(curated, shards, ShardsConfig(val_fraction=0, test_fraction=0, shard_size_mb=64))
    config = SampleConfig(stage=args.stage, size_px=512, motion_frames=4, frames=12, window_m=2, window_starts=args.window_starts)
    dataset = ShardDataset(shards, config, split="train", shuffle_buffer=args.shuffle_buffer, output_dtype=args.dtype)
    n_clips = sum(1 for _ in (curated / "clips").glob("*.json"))
    epochs = int(np.ceil((args.samples + args.warmup) / n_clips)) + 1
    loader = DataLoader(_Epochs(dataset, epochs), batch_size=None, num_workers=1, prefetch_factor=2)
    iterator = iter(loader)
    for _ in range(args.warmup):
        next(iterator)
    worker_pid = iterator._workers[0].pid
    cpu_start = _cpu_s(worker_pid)
    start = time.perf_counter()
    shapes = None
    for _ in range(args.samples):
        sample = next(iterator)
        shapes = shapes or {k: list(v.shape) for k, v in sample.items() if isinstance(v, torch.Tensor) and v.ndim}
    elapsed = time.perf_counter() - start
    cpu_s = _cpu_s(worker_pid) - cpu_start
    peak_mb = _peak_rss_mb(worker_pid)
    del iterator
    return {
        "stage": args.stage,
        "size_px": 512,
        "corpus": str(curated) if args.curated else f"synthetic {args.clips} x {args.seconds} s",
        "encoding": "curation's" if args.curated else f"gop {args.gop}, {'plain' if args.no_fast_decode else 'fastdecode'}",
        "dtype": args.dtype,
        "window_starts": args.window_starts,
        "shuffle_buffer": args.shuffle_buffer,
        "samples": args.samples,
        "samples_per_s_per_worker": round(args.samples / elapsed, 2),
        # The worker's own CPU time: what one uncontended core gives (the wall rate drops when
        # other processes share the cores).
        "samples_per_worker_cpu_s": round(args.samples / cpu_s, 2),
        "worker_peak_rss_mb": round(peak_mb, 1),
        "shapes": shapes,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/emoforge-bench-shards", help="cache folder for the corpus and shards")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (curation's default window)")
    parser.add_argument("--curated", help="a curation output folder (clips/ + manifest.parquet) instead of synthetic clips")
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval of the synthetic clips (frames; curation's is 12)")
    parser.add_argument("--no-fast-decode", action="store_true", help="synthetic clips without x264's fastdecode tune")
    parser.add_argument("--stage", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=("float32", "uint8", "yuv420"))
    parser.add_argument("--window-starts", default="any", choices=("any", "keyframes"), help="SampleConfig.window_starts")
    parser.add_argument("--shuffle-buffer", type=int, default=32)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # inherited by the (forked) worker: one worker, one core
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
