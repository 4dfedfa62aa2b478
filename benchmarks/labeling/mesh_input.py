"""Is MediaPipe's tracking mesh bound by its model or by the image it is given?

    taskset -c 1 .venv/bin/python benchmarks/labeling/mesh_input.py VIDEO [--frames 300] [--rounds 2]

Runs the labeler's face mesh graph (tracking mode, one face, iris refinement on, as
``faces.FaceMesher`` builds it) over the first ``--frames`` frames of ``VIDEO`` given
three ways: the whole frame, the frame area-downscaled to half, and a centred square crop
of the short side; then the whole frame without iris refinement. Prints the CPU
milliseconds a call (after 10 warm-up frames) and how many faces it found.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"error: no such video file: {args.video}", file=sys.stderr)
        raise SystemExit(2)

    import cv2
    import numpy as np

    from emoforge.labeling.faces import _Graph, _mediapipe
    from emoforge.labeling.video import iter_frames

    frames = []
    for frame in iter_frames(args.video):
        frames.append(frame.rgb)
        if len(frames) >= args.frames:
            break
    if len(frames) <= 10:
        print(f"error: {args.video} has {len(frames)} frames; more than 10 are needed", file=sys.stderr)
        raise SystemExit(2)
    height, width = frames[0].shape[:2]
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    inputs = {
        f"whole {width}x{height}": (frames, True),
        f"half {width // 2}x{height // 2}": ([cv2.resize(f, (width // 2, height // 2), interpolation=cv2.INTER_AREA) for f in frames], True),
        f"crop {side}x{side}": ([np.ascontiguousarray(f[y0:y0 + side, x0:x0 + side]) for f in frames], True),
        f"whole {width}x{height}, no iris": (frames, False),
    }
    mesh = _mediapipe().solutions.face_mesh.FaceMesh
    for _ in range(args.rounds):
        for name, (images, refine) in inputs.items():
            graph = _Graph(mesh(static_image_mode=False, max_num_faces=1, refine_landmarks=refine,
                                min_detection_confidence=0.5, min_tracking_confidence=0.5), "multi_face_landmarks")
            for image in images[:10]:
                graph.run(image)
            started, found = time.process_time(), 0
            for image in images[10:]:
                found += len(graph.run(image))
            graph.close()
            print(f"{name}: {1000 * (time.process_time() - started) / (len(images) - 10):.2f} ms a call, "
                  f"faces in {found} of {len(images) - 10} frames")


if __name__ == "__main__":
    main()
