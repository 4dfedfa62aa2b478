"""``emoforge label`` and ``emoforge label-buckets``: per-video labels and the corpus' speed buckets."""

from __future__ import annotations

import argparse

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "label",
        help="label videos: face boxes, head pose, rotation speed, speech, audio features",
        description=(
            "Label every frame of each video (MediaPipe face boxes and mesh, face tracks, the "
            "dominant/speaking face, 6-DoF head pose, rotation velocity, speech activity, log-mel "
            "and optional wav2vec2 features) into DIR (format: docs/labels.md), then fit the "
            "corpus' speed buckets over every video labelled in DIR (DIR/speed_buckets.json). "
            "Reruns skip finished videos. Unusable videos are recorded with a reason."
        ),
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or folders of videos")
    parser.add_argument("--out", required=True, help="output folder for the label files")
    parser.add_argument("--buckets", type=_positive_int, default=8, help="number of speed buckets d, at most (default 8)")
    parser.add_argument("--min-bucket-width", type=float, default=None, metavar="DEG_PER_S",
                        help="merge buckets narrower than this (default: ~3x the labels' velocity error, docs/labeling.md)")
    parser.add_argument("--window-m", type=_non_negative_int, default=2, help="speed window ±m frames (paper: 2)")
    parser.add_argument("--wav2vec2", metavar="MODEL_DIR", help="local transformers wav2vec2 folder: all-layer features")
    parser.add_argument("--focal-px", type=_positive_float, help="focal length in pixels (default: max(width, height))")
    parser.add_argument("--pose-method", choices=("pnp", "lift"), default="pnp", help="head pose method (default pnp)")
    parser.add_argument("--smoothing-frames", type=_non_negative_float, default=3.0,
                        help="Gaussian sigma for the smoothed rotations (and the velocity with --no-flow), "
                             "frames (default 3; 0 = none)")
    parser.add_argument("--no-flow", action="store_true",
                        help="velocity from consecutive head poses instead of the face's image flow (faster, "
                             "less accurate)")
    parser.add_argument("--no-mesh", action="store_true", help="do not store the 478-point mesh per frame")
    parser.add_argument("--overwrite", action="store_true", help="relabel videos that already have labels")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="videos labelled at once, one process each, bound to its own core (default: one per "
                             "usable core, at most one per video; 1: one at a time in this process)")
    parser.set_defaults(run=_run_label)

    buckets = subparsers.add_parser(
        "label-buckets",
        help="fit speed buckets and print Table 2 velocity statistics of a label folder",
        description="Fit d speed buckets to every labelled video in DIR (no video is decoded) and "
        "print the paper's Table 2 statistics (mean velocity, velocity variance, VMV).",
    )
    buckets.add_argument("labels_dir", metavar="DIR")
    buckets.add_argument("--buckets", type=_positive_int, default=8, help="number of speed buckets d, at most (default 8)")
    buckets.add_argument("--min-bucket-width", type=float, default=None, metavar="DEG_PER_S",
                         help="merge buckets narrower than this (default: ~3x the labels' velocity error)")
    buckets.add_argument("--window-m", type=_non_negative_int, default=2, help="speed window ±m frames (paper: 2)")
    buckets.add_argument("--method", choices=("quantile", "linear"), default="quantile")
    buckets.set_defaults(run=_run_buckets)


def _run_label(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from emoforge.errors import UserError
    from emoforge.labeling.corpus import fit_corpus_buckets, write_run_config
    from emoforge.labeling.label import LabelConfig

    paths = []
    for name in args.videos:
        path = Path(name)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES))
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"no such video file or folder: {name}")
    if not paths:
        raise UserError("no video files found in the given folders")
    if args.wav2vec2 and not Path(args.wav2vec2, "config.json").is_file():
        raise UserError(f"--wav2vec2 {args.wav2vec2} is not a transformers model folder (no config.json)")
    config = LabelConfig(
        focal_px=args.focal_px,
        pose_method=args.pose_method,
        smoothing_sigma_frames=args.smoothing_frames,
        flow_velocity=not args.no_flow,
        store_mesh=not args.no_mesh,
        wav2vec2_dir=str(Path(args.wav2vec2).resolve()) if args.wav2vec2 else None,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, config, args.buckets, args.window_m)
    rejected = 0
    for path, outcome in _label_all(paths, out, config, args.overwrite, args.workers):
        if outcome["ok"]:
            note = f" ({'; '.join(outcome['warnings'])})" if outcome["warnings"] else ""
            print(f"{path}: ok, {outcome['n_frames']} frames, {outcome['frames_with_pose']} with pose{note}", flush=True)
        else:
            rejected += 1
            sys.stderr.write(f"{path}: rejected: {outcome['reason']}\n")
    try:
        buckets = fit_corpus_buckets(out, d=args.buckets, window_m=args.window_m, **_min_width(args))
        print(f"speed buckets (deg/s edges): {', '.join(f'{e:.2f}' for e in buckets.edges_deg_per_s)}")
    except UserError as exc:
        sys.stderr.write(f"speed buckets not fitted: {exc}\n")
    return 1 if rejected else 0


def _label_all(paths, out, config, overwrite: bool, workers: int | None):
    """``(path, outcome)`` for each video as it is done (``_label_one``): in this process with
    one worker, else in a pool of processes each bound to its own core (``emoforge.cores``;
    the labeler measured 25 % faster bound than floating, docs/labeling.md)."""
    from emoforge.cores import cores_for_workers, usable_cores

    workers = min(workers or len(usable_cores()), len(paths))
    if workers <= 1:
        for path in paths:
            yield path, _label_one(path, out, config, overwrite)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive a fork
    cores = context.Queue()
    for core in cores_for_workers(workers):
        cores.put(core)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_bind_worker, initargs=(cores,)) as pool:
        futures = {pool.submit(_label_one, path, out, config, overwrite): path for path in paths}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _bind_worker(cores) -> None:
    from emoforge.cores import pin_to_core

    pin_to_core(cores.get())


def _label_one(path, out, config, overwrite: bool) -> dict:
    """Label one video; what the command reports of it (the arrays stay in the files)."""
    from emoforge.labeling.label import label_video

    labels = label_video(path, out, config, overwrite=overwrite)
    meta = labels.meta
    return {
        "ok": labels.ok,
        "reason": meta.get("reason"),
        "warnings": meta.get("warnings", []),
        "n_frames": meta.get("video", {}).get("n_frames", 0),
        "frames_with_pose": meta.get("summary", {}).get("frames_with_pose", 0),
    }


def _run_buckets(args: argparse.Namespace) -> int:
    from emoforge.labeling.corpus import corpus_velocity_stats, fit_corpus_buckets

    buckets = fit_corpus_buckets(args.labels_dir, d=args.buckets, window_m=args.window_m, method=args.method,
                                 **_min_width(args))
    stats = corpus_velocity_stats(args.labels_dir)
    print(f"speed buckets: d={buckets.d}, m={buckets.window_m}, {buckets.frames_fitted} frames")
    for c, r in zip(buckets.centres_deg_per_s, buckets.radii_deg_per_s):
        print(f"  centre {c:8.3f} deg/s  radius {r:8.3f}")
    for unit, value in stats.items():
        print(
            f"{unit}: mean velocity {value.mean_velocity:.4f}, velocity variance {value.velocity_variance:.4f}, "
            f"VMV {value.variance_of_mean_velocities:.4f} ({value.clips} clips, {value.frames} frames)"
        )
    return 0


def _positive_int(text: str) -> int:
    value = _parse(int, text, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _parse(int, text, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _parse(float, text, "a number")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _parse(float, text, "a number")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number: {text!r}")
    return value


def _parse(kind, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def _min_width(args) -> dict:
    """``--min-bucket-width`` when given; else the corpus default of labeling.speed."""
    if args.min_bucket_width is None:
        return {}
    if args.min_bucket_width < 0:
        from emoforge.errors import UserError

        raise UserError("--min-bucket-width must be >= 0")
    return {"min_width_deg_per_s": args.min_bucket_width}
