"""Curation throughput and memory on generated footage (issue 4's benchmark).

    .venv/bin/python benchmarks/curation/run.py --out DIR [--videos 4] [--minutes 0.5] [--cpus 1 2] [--sets mixed talking]

For each footage set (``mixed``: talking heads with every distractor kind; ``talking``:
talking heads only) and each CPU count, runs ``emoforge curate`` on local files (download
excluded) with a fresh output folder and reports:

- input hours processed per core-hour: hours of source video / (wall hours x CPUs);
- CPU seconds by stage (probe+scan, label: reading the span from the source included, clips), from the run's summary;
- peak resident memory of the busiest Ray worker, sampled every 0.2 s;
- and, with ``--lengths``, peak worker memory against the length of one talking video.

Goals: >= 10 input-hours per core-hour on mixed footage, >= 2 on talking-head footage,
memory flat in video length. Results go to DIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sets", nargs="+", choices=["mixed", "talking"], default=["mixed", "talking"])
    parser.add_argument("--config", help="a curation config file for every run (emoforge curate --config)")
    parser.add_argument("--lengths", type=float, nargs="*", default=[], help="minutes of one talking video, e.g. 0.5 2")
    args = parser.parse_args()

    from emoforge.curation.footage.generate import generate_footage
    from emoforge.curation.footage.scenes import DISTRACTOR_KINDS

    out = Path(args.out)
    sets = {name: kinds for name, kinds in {"mixed": DISTRACTOR_KINDS, "talking": ()}.items() if name in args.sets}
    results = {"videos": args.videos, "minutes_each": args.minutes, "runs": [], "lengths": []}
    for name, distractors in sets.items():
        footage = out / f"footage-{name}"
        # 720p and 360p landscape, portrait 29.97 and VFR: formats a curator meets.
        generate_footage(footage, videos=args.videos, seed=7, minutes=args.minutes, distractors=distractors)
        for cpus in args.cpus:
            results["runs"].append(_curate(footage, out / f"run-{name}-{cpus}cpu", cpus, name, args.config))
            print(json.dumps(results["runs"][-1]), flush=True)
    for minutes in args.lengths:
        footage = out / f"footage-length-{minutes}"
        generate_footage(footage, videos=1, seed=11, minutes=minutes, distractors=(), formats=("mp4-720p25",))
        run = _curate(footage, out / f"run-length-{minutes}", 2, f"one {minutes} min talking video", args.config)
        results["lengths"].append({"minutes": minutes, "peak_worker_rss_mb": run["peak_worker_rss_mb"],
                                   "peak_total_rss_mb": run["peak_total_rss_mb"]})
        print(json.dumps(results["lengths"][-1]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


def _curate(footage: Path, run_dir: Path, cpus: int, label: str, config: str | None = None) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    files = sorted(str(p) for p in footage.iterdir() if p.suffix in (".mp4", ".webm", ".mkv"))
    command = [sys.executable, "-m", "emoforge", "curate", *files, "--out", str(run_dir), "--num-cpus", str(cpus)]
    if config:
        command += ["--config", config]
    sampler = _MemorySampler()
    sampler.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    sampler.stop()
    if done.returncode != 0:
        raise SystemExit(f"curate failed: {done.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    from emoforge.curation.evaluate import evaluate

    scores = evaluate(run_dir, footage)
    scores.pop("per_video")
    hours_in = summary["hours_in"]
    stages = summary["cpu_s_by_stage"]
    by_stage = {stage: round(hours_in / (seconds / 3600), 1) for stage, seconds in stages.items() if seconds > 0}
    return {
        "set": label,
        "cpus": cpus,
        "hours_in": round(hours_in, 4),
        "hours_kept": round(summary["hours_kept"], 4),
        "clips": summary["clips"],
        "wall_s": round(wall_s, 1),
        "input_hours_per_core_hour": round(hours_in / (wall_s * cpus / 3600), 2),
        "input_hours_per_core_hour_excluding_ray_start": round(hours_in / ((wall_s - _ray_start_s(done.stderr)) * cpus / 3600), 2),
        "cpu_s_by_stage": stages,
        "input_hours_per_cpu_hour_by_stage": by_stage,
        "peak_worker_rss_mb": sampler.peak_worker_mb,
        "peak_total_rss_mb": sampler.peak_total_mb,
        "load_average_after": round(os.getloadavg()[0], 2),
        "against_truth": scores,
    }


def _ray_start_s(stderr: str) -> float:
    """Seconds before the first progress line: Ray's start and the actors' model loading."""
    for line in stderr.splitlines():
        if line.startswith("[") and " s] sources" in line:
            return float(line[1:].split(" s]")[0])
    return 0.0


class _MemorySampler(threading.Thread):
    """Peak RSS of Ray worker processes (``ray::`` in their title) and of all of them together."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_worker_mb = 0.0
        self.peak_total_mb = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0.0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not cmdline.startswith(b"ray::"):
                        continue
                    rss_kb = next(int(l.split()[1]) for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("VmRSS"))
                except (OSError, StopIteration, ValueError):
                    continue
                total += rss_kb / 1024
                self.peak_worker_mb = max(self.peak_worker_mb, round(rss_kb / 1024, 1))
            self.peak_total_mb = max(self.peak_total_mb, round(total, 1))
            time.sleep(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join()


if __name__ == "__main__":
    main()
