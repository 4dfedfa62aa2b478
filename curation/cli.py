"""``emoforge curate``: URL lists and video dumps in, kept talking-head clips out."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "curate",
        help="download, scene-split, screen, label and clip talking-head footage on Ray",
        description=(
            "Curate talking-head clips from SOURCES: URLs (any site yt-dlp supports, plain "
            "http/https files), text files of URLs (one per line, # comments), local video "
            "files and folders. Writes clips, a parquet manifest and a summary to --out; "
            "rerunning the same command resumes."
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="URL, URL-list file, video file or folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--config", help="JSON or YAML file overriding settings by section (see docs/curation.md)")
    parser.add_argument("--ray-address", help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--num-cpus", type=int, help="CPUs for a local Ray cluster (default: all)")
    parser.set_defaults(run=_run)

    demo = subparsers.add_parser(
        "demo",
        help="the main job on generated footage: render, serve on 127.0.0.1, curate, score",
        description=(
            "Render talking-head footage with known truth, serve it over HTTP on 127.0.0.1, "
            "curate it through yt-dlp on a local Ray cluster, and score the clips against the truth."
        ),
    )
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--videos", type=int, default=4, help="videos to render (default 4)")
    demo.add_argument("--minutes", type=float, default=0.5, help="minutes per video (default 0.5)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from emoforge.curation.demo import run_demo
    from emoforge.errors import UserError, require

    require("ray", "curation")
    if args.videos < 1 or not args.minutes > 0:
        raise UserError("--videos must be at least 1 and --minutes positive")
    result = run_demo(args.out, videos=args.videos, minutes=args.minutes, seed=args.seed)
    return 0 if result["summary"]["clips"] else 2


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys
    from pathlib import Path

    from emoforge.curation.config import load_config
    from emoforge.errors import UserError, require

    require("ray", "curation")
    config = load_config(args.config)
    ray_overrides = {}
    if args.ray_address:
        ray_overrides["address"] = args.ray_address
    if args.num_cpus is not None:
        if args.num_cpus < 1:
            raise UserError("--num-cpus must be at least 1")
        ray_overrides["num_cpus"] = args.num_cpus
    if ray_overrides:
        config = dataclasses.replace(config, ray=dataclasses.replace(config.ray, **ray_overrides))
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from None

    from emoforge.curation.pipeline import curate

    summary = curate(args.sources, out, config)
    print(format_summary(summary, out), file=sys.stderr)
    if summary["sources"] == 0 or summary["processed"] == 0:
        raise UserError(f"nothing could be processed: every source was rejected or failed (see {out / 'manifest.parquet'})")
    return 0


def format_summary(summary: dict, out) -> str:
    lines = [
        f"curated {summary['sources']} sources into {out}: {summary['sources_kept']} kept, "
        f"{summary['sources_rejected']} rejected, {summary['sources_failed']} failed",
        f"  hours in {summary['hours_in']:.3f}, hours kept {summary['hours_kept']:.3f} in {summary['clips']} clips "
        f"({summary['wall_s']:.0f} s)",
    ]
    if summary["reject_reasons"]:
        lines.append("  reject reasons:")
        lines.extend(f"    {count:5d}  {reason}" for reason, count in summary["reject_reasons"].items())
    return "\n".join(lines)
