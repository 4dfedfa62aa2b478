"""``emoforge shards build|verify|stats|split|features``: WebDataset shards of curated clips."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "shards",
        help="build, verify and describe WebDataset shards of curated clips",
        description="WebDataset shards of curated clips (docs/format.md): build, verify, stats, split, features.",
    )
    commands = parser.add_subparsers(dest="shards_command", metavar="ACTION", parser_class=type(parser))
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])

    build = commands.add_parser(
        "build",
        help="build shards from a curation output folder (manifest + clips)",
        description=(
            "Build shards from DIR/manifest.parquet and DIR/clips/ without re-running labeling. "
            "Settings are --set key=value ... (see shards/config.py: thresholds, exclude=REJECTIONS, "
            "val_fraction, test_fraction, identities=MAP, shard_size_mb, speed_buckets=FILE, ...)."
        ),
    )
    build.add_argument("curated", help="curation output folder (manifest.parquet, clips/)")
    build.add_argument("--out", required=True, help="shards folder (created; a rerun rewrites only what changed)")
    build.add_argument("--set", dest="settings", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="configuration overrides")
    build.set_defaults(run=_build)

    verify = commands.add_parser("verify", help="check every shard reads, every sample decodes, checksums match")
    verify.add_argument("shards", help="shards folder (with index.json)")
    verify.add_argument("--quick", action="store_true", help="skip decoding every video frame")
    verify.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    verify.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    verify.set_defaults(run=_verify)

    stats = commands.add_parser("stats", help="hours, clips, split counts and distributions (JSON + PNG)")
    stats.add_argument("shards", help="shards folder (with index.json)")
    stats.add_argument("--out", help="folder for stats.json and plots (default: SHARDS/stats)")
    stats.set_defaults(run=_stats)

    split = commands.add_parser(
        "split",
        help="assign train/val/test by source and identity (writes splits.parquet)",
        description="Assign splits without building shards; --set key=value: val_fraction, test_fraction, split_seed, identities=MAP, thresholds.",
    )
    split.add_argument("curated", help="curation output folder")
    split.add_argument("--out", required=True, help="splits file to write (.parquet)")
    split.add_argument("--set", dest="settings", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="configuration overrides")
    split.set_defaults(run=_split)

    features = commands.add_parser("features", help="add cached VAE latents / audio features to built shards")
    features.add_argument("shards", help="shards folder (with index.json)")
    features.add_argument("--vae", help="diffusers AutoencoderKL folder: adds latents.npy")
    features.add_argument("--audio", choices=("logmel", "wav2vec2"), help="adds audio.npy of this kind")
    features.add_argument("--wav2vec2", help="transformers wav2vec2 folder (with --audio wav2vec2)")
    features.add_argument("--device", default="cpu", help="torch device for the models (default cpu)")
    features.set_defaults(run=_features)


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")


def _config(settings):
    from emoforge.shards.config import ShardsConfig, apply_overrides

    return apply_overrides(ShardsConfig(), settings)


def _build(args: argparse.Namespace) -> int:
    from emoforge.shards.writer import build_shards

    report = build_shards(args.curated, args.out, _config(args.settings), progress=_say)
    for split, row in report.splits.items():
        print(f"{split}: {row['samples']} clips, {row['hours']:.3f} h, {row['shards']} shards, {row['groups']} identity groups")
    for reason, count in sorted(report.dropped.items()):
        print(f"dropped {count}: {reason}")
    print(f"{report.written} of {len(report.shards)} shards written in {args.out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from emoforge.shards.verify import verify_shards
    from emoforge.shards.writer import write_json_atomic

    report = verify_shards(args.shards, decode_video=not args.quick, workers=max(1, args.workers))
    for shard in report.shards:
        if shard.ok:
            print(f"ok   {shard.name}: {shard.samples_ok} samples")
        else:
            print(f"BAD  {shard.name}: {'; '.join(shard.problems[:5])}")
    for problem in report.problems:
        print(f"BAD  {problem}")
    for kind, leaks in report.leakage.items():
        for name, splits in leaks.items():
            print(f"LEAK {kind} {name} in {', '.join(splits)}")
    if args.json:
        write_json_atomic(args.json, report.to_dict())
    print("all shards verified" if report.ok else f"{len(report.bad_shards)} bad shard(s): {', '.join(report.bad_shards)}")
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emoforge.shards.stats import summary_lines, write_stats

    out = args.out or str(Path(args.shards) / "stats")
    written = write_stats(args.shards, out)
    stats = json.loads(written["json"].read_text())
    for line in summary_lines(stats):
        print(line)
    print(f"wrote {written['json']} and {len(written) - 1} plots")
    return 0


def _split(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emoforge.shards.manifest import select_clips
    from emoforge.shards.splits import assign_splits, leakage, load_identity_map
    from emoforge.shards.writer import write_table_atomic

    config = _config(args.settings)
    selection = select_clips(Path(args.curated), config)
    records = [{"clip_id": c.clip_id, "source_id": c.source_id, "identities": c.identities} for c in selection.selected]
    identity_map = load_identity_map(config.identities) if config.identities else None
    rows = assign_splits(records, config.val_fraction, config.test_fraction, config.split_seed, identity_map)
    leaks = leakage(rows)
    assert not any(leaks.values()), leaks  # assign_splits' invariant; a leak here is a bug
    write_table_atomic(Path(args.out), rows, ["clip_id", "source_id", "identities", "group_id", "split"])
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        print(f"{split}: {len(chosen)} clips, {len({r['source_id'] for r in chosen})} sources, {len({r['group_id'] for r in chosen})} groups")
    print(f"wrote {args.out}")
    return 0


def _features(args: argparse.Namespace) -> int:
    from emoforge.shards.features import add_features

    report = add_features(args.shards, vae_dir=args.vae, audio=args.audio, wav2vec2_dir=args.wav2vec2, device=args.device, progress=_say)
    print(f"{len(report.shards_done)} shards, {report.samples} samples with features; {len(report.shards_failed)} left as they were")
    for name, problems in report.shards_failed.items():
        print(f"BAD  {name}: {'; '.join(problems[:3])}")
    return 0 if not report.shards_failed else 1
