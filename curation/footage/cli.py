"""``emoforge footage``: render talking-head footage whose truth is known."""

from __future__ import annotations

import argparse

from emoforge.curation.footage.encode import FORMATS
from emoforge.curation.footage.scenes import DISTRACTOR_KINDS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "footage",
        help="render talking-head videos with known truth (tests, demo, calibration)",
        description=(
            "Render multi-scene, internet-like talking-head videos from public-domain "
            "portraits, each with a truth file (scene cuts, face boxes, head pose, "
            "speech, phoneme times). Deterministic for a seed."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (created; reruns skip finished videos)")
    parser.add_argument("--videos", type=_positive_int, default=8, help="number of videos (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--minutes", type=_positive_float, default=0.5, help="length of each video in minutes (default 0.5)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=None, help="parallel render processes (default: CPU count)"
    )
    parser.add_argument(
        "--format",
        dest="formats",
        action="append",
        metavar="NAME",
        choices=[f.name for f in FORMATS],
        help="render only this format (repeatable; default: cycle through all of them)",
    )
    parser.add_argument(
        "--distractors",
        default=None,
        metavar="KIND,...",
        help="scene kinds between talking heads (default: all of them, cycled; 'none': talking heads only). "
        f"Kinds: {', '.join(DISTRACTOR_KINDS)}",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from emoforge.curation.footage.generate import generate_footage

    if args.distractors is None:
        distractors = DISTRACTOR_KINDS
    elif args.distractors.strip() == "none":
        distractors = ()
    else:
        distractors = tuple(k.strip() for k in args.distractors.split(",") if k.strip())
    generate_footage(
        args.out, videos=args.videos, seed=args.seed, minutes=args.minutes, workers=args.workers,
        formats=args.formats, distractors=distractors,
    )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value
