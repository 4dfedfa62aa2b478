"""What one ``label_frames`` call costs beyond its frames: fresh MediaPipe graphs against lent ones.

    taskset -c 1 .venv/bin/python benchmarks/labeling/call_setup.py VIDEO [--frames 10] [--calls 10] [--rounds 2]

Curation makes one labeler call per scene span (a few seconds of video each), so what a
call spends building graphs counts once per span. Labels the first ``--frames`` frames of
``VIDEO`` ``--calls`` times with graphs built for each call and as many times with one
:class:`~emoforge.labeling.label.LabelModels` lent to all, alternating for ``--rounds``,
and prints the CPU milliseconds a call. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"error: no such video file: {args.video}", file=sys.stderr)
        raise SystemExit(2)

    from emoforge.labeling.label import LabelConfig, LabelModels, label_frames
    from emoforge.labeling.video import DecodedFrame, iter_frames, probe_video

    info = probe_video(args.video)
    frames = []
    for frame in iter_frames(args.video):
        frames.append(frame)
        if len(frames) >= args.frames:
            break
    models = LabelModels(LabelConfig())
    with tempfile.TemporaryDirectory() as scratch:
        calls = 0

        def call(lent) -> None:  # a new id each call: a finished one would be read back, not labelled
            nonlocal calls
            calls += 1
            label_frames((DecodedFrame(f.index, f.time_s, f.rgb) for f in frames), info, None, Path(scratch), f"c{calls}",
                         {"call": calls}, models=lent)

        call(None)  # imports and the first graphs, outside the timing
        call(models)
        for _ in range(args.rounds):
            for name, lent in (("fresh graphs", None), ("lent graphs", models)):
                started = time.process_time()
                for _ in range(args.calls):
                    call(lent)
                print(f"{name}: {1000 * (time.process_time() - started) / args.calls:.1f} ms a call of {len(frames)} frames")
    models.close()


if __name__ == "__main__":
    main()
