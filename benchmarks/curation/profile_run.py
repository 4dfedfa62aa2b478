"""Where a curation run's CPU goes, step by step: redo a finished run's work in this process.

Takes the output folder of ``emoforge curate`` (or of ``benchmarks/curation/run.py``, a
``run-*`` folder), rescans its downloaded sources and relabels and reclips their kept
spans in one process, without Ray, into a scratch folder (the run's own files are not
touched), and prints CPU seconds per step, per 2 minutes of source video:

- scan: decode, scene split and face screening (``scan.scan_video``'s own clock);
- label: the labeler's steps (``labeling.label``'s clock: decode, mesh, detect, flow, ...);
- clips: the x264 encode, the second decode, the crop, the audio, the sharpness filter
  and the labels file (cProfile of the clip writer);
- the functions with the most CPU of their own.

Run it pinned to one core (``taskset -c 1``), as the pipeline pins its actors.

    taskset -c 1 .venv/bin/python benchmarks/curation/profile_run.py /tmp/cbench/run-talking-1cpu --scratch /tmp/cprof
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import shutil
import sys
from pathlib import Path

# The clip writer's steps: (label, module path suffix, function name), measured below _write_clip.
_CLIP_STEPS = [
    ("x264 encode", "~", "<method 'encode' of 'av.video.stream.VideoStream' objects>"),
    ("decode (second pass)", "curation/span.py", "frames"),
    ("crop (Y, U, V planes)", "curation/clips.py", "crop_yuv420"),
    ("audio (FLAC)", "emoforge/media.py", "encode_audio"),
    ("sharpness filter", "curation/clips.py", "face_sharpness"),
    ("sharpness RGB", "curation/span.py", "rgb"),
    ("labels file", "curation/clips.py", "_write_npz"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished curation output folder (holds state/ and downloads/)")
    parser.add_argument("--scratch", required=True, help="a folder for the redone work (emptied first)")
    parser.add_argument("--top", type=int, default=15, help="functions to list by their own CPU")
    args = parser.parse_args()

    from emoforge.curation.config import CurationConfig
    from emoforge.curation.process import Scanner, SpanWorker

    run, scratch = Path(args.run), Path(args.scratch)
    states = [json.loads(p.read_text()) for p in sorted((run / "state").glob("*.json"))]
    states = [s for s in states if s.get("path") and (s.get("probe") or {}).get("ok")]
    if not states:
        print(f"error: no scanned source in {run / 'state'}", file=sys.stderr)
        raise SystemExit(2)
    config = CurationConfig.from_dict(json.loads((run / "config.json").read_text())) if (run / "config.json").is_file() else CurationConfig()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)

    scanner = Scanner(config)
    scan = collections.Counter()
    for state in states:
        record = scanner.scan(state["source_id"], state["path"])
        scan.update(record["cpu_s"])
        scan.update({f"scan.{k}": v for k, v in record.get("scan_seconds", {}).items()})
    minutes = sum(s["probe"]["duration_s"] for s in states) / 60

    worker, steps = SpanWorker(config), collections.Counter()

    def spans():
        for state in states:
            for span in state.get("spans", []):
                row = worker.process(state["source_id"], state["path"], span, state["probe"], state["provenance"],
                                     str(scratch), state["sha256"])
                steps.update(row["cpu_s"])

    profile = _profiled(spans)
    per2 = 2.0 / minutes
    print(f"{len(states)} sources, {minutes:.2f} min; CPU seconds per 2 min of source:")
    print(f"scan {scan['scan'] * per2:6.2f}   " + "  ".join(f"{k[5:]} {v * per2:.2f}" for k, v in sorted(scan.items()) if k.startswith("scan.")))
    print(f"label {steps['label'] * per2:5.2f}   " + "  ".join(
        f"{k[6:]} {v * per2:.2f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1]) if k.startswith("label.") and v * per2 >= 0.05))
    print(f"clips {steps['clips'] * per2:5.2f}   " + "  ".join(
        f"{name} {seconds * per2:.2f}" for name, seconds in _below(profile, "curation/clips.py", "_write_clip", _CLIP_STEPS)))
    print("\nfunctions by their own CPU (s per 2 min):")
    rows = sorted(profile.stats.items(), key=lambda kv: -kv[1][2])[: args.top]
    for (path, line, name), (_, calls, own, _cum, _callers) in rows:
        print(f"{own * per2:7.2f}  {calls:7d} calls  {Path(path).name}:{line} {name}" if path != "~" else f"{own * per2:7.2f}  {calls:7d} calls  {name}")


def _profiled(work) -> pstats.Stats:
    profile = cProfile.Profile()
    profile.enable()
    work()
    profile.disable()
    return pstats.Stats(profile)


def _below(stats: pstats.Stats, caller_path: str, caller_name: str, steps) -> list[tuple[str, float]]:
    """Cumulative seconds of each step when called from the given function."""
    found = []
    for label, path, name in steps:
        seconds = 0.0
        for (f_path, _, f_name), (_, _, _, _, callers) in stats.stats.items():
            if f_name == name and (f_path.endswith(path) or path == f_path):
                seconds += sum(c[3] for (c_path, _, c_name), c in callers.items()
                               if c_name == caller_name and c_path.endswith(caller_path))
        found.append((label, seconds))
    return found


if __name__ == "__main__":
    main()
