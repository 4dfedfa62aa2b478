"""One span worker's memory over many spans: is it flat in the length of what it processes?

    .venv/bin/python benchmarks/curation/span_memory.py VIDEO --out DIR [--passes 4]

Scans ``VIDEO`` and runs one ``SpanWorker`` (in this process, no Ray) over all its kept
spans ``--passes`` times, each pass into a fresh folder (so nothing is reused), sampling
this process's resident size every 50 ms. Prints, per pass, the RSS after each span
(min, max, last) and the peak so far: a worker that leaks grows pass after pass.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    from emoforge.curation.config import CurationConfig
    from emoforge.curation.process import Scanner, SpanWorker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()

    peak = [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    config = CurationConfig()
    record = Scanner(config).scan("memory", str(args.video))
    if not record["spans"]:
        raise SystemExit(f"error: {args.video.name} has no kept span ({record.get('reason')})")
    worker = SpanWorker(config)
    for run in range(args.passes):
        after = []
        for span in record["spans"]:
            worker.process("memory", str(args.video), span, record["probe"], {}, str(args.out / f"pass-{run}"))
            after.append(_rss_mb())
        print(json.dumps({"pass": run, "spans": len(after), "rss_after_span_mb": [round(min(after)), round(max(after)), round(after[-1])],
                          "peak_mb": round(peak[0])}), flush=True)


if __name__ == "__main__":
    main()
