"""Render speed of ground-truth footage: 1 minute of 720p (two 30 s videos) on 2 workers.

    .venv/bin/python benchmarks/footage/run.py [--out DIR] [--minutes 1.0] [--workers 2]

Goal (issue 2): 1 minute of 720p footage in under 60 s on 2 cores. Prints wall time,
CPU time of the render processes, and the machine's load (other work on it slows this).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the footage (default: a temporary one, removed)")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", default="mp4-720p25")
    args = parser.parse_args()

    from emoforge.curation.footage.generate import generate_footage

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="footage-bench-"))
    videos = args.workers
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    generate_footage(out, videos=videos, seed=1234, minutes=args.minutes / videos, workers=args.workers,
                     formats=(args.format,))
    wall_s = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "format": args.format,
        "minutes_rendered": args.minutes,
        "workers": args.workers,
        "wall_s": round(wall_s, 1),
        "render_cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "seconds_of_video_per_wall_second": round(args.minutes * 60 / wall_s, 2),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if not args.out:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
