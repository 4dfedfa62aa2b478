"""``emoforge train`` and ``emoforge animate`` (issue 6). argparse only; the work is imported when a command runs.

Configuration lives in `training/run_config.py` (presets, files, `--set section.key=value`);
the flags here say where things are (shards, run folder, weights), not how to train.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train EMO (stage 1, 2 or 3) from shards; one process, torchrun DDP or FSDP",
        description=(
            "Train EMO from WebDataset shards (docs/training.md). Settings: --config tiny|sd15|FILE, then "
            "--set section.key=value (e.g. train.max_steps=1000 train.learning_rate=1e-5 model.num_frames=12); "
            "the resolved config is written to OUT/run_config.json. Several GPUs or nodes: launch with torchrun."
        ),
    )
    train.add_argument("--stage", type=int, choices=(1, 2, 3), required=True, help="paper §3.3 training stage")
    train.add_argument("--shards", required=True, metavar="PATTERN",
                       help="shards folder (its train split), or tars: 'DIR/train-*.tar', 'DIR/train-{000000..000099}.tar'")
    train.add_argument("--config", required=True, metavar="tiny|sd15|FILE", help="preset or JSON/YAML run config")
    train.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints, logs, validation videos")
    train.add_argument("--init", action="append", default=[], metavar="DIR",
                       help="initial weights (repeatable): an earlier stage's run/checkpoint, an EMO model folder, "
                            "a diffusers SD1.5 UNet folder, a diffusers MotionAdapter folder")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    train.add_argument("--vae", metavar="DIR", help="diffusers AutoencoderKL folder (sets latents.kind=vae, latents.vae_dir)")
    train.add_argument("--set", dest="settings", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="config overrides, e.g. train.max_steps=500")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda (default auto)")
    train.set_defaults(run=_train)

    animate = subparsers.add_parser(
        "animate",
        help="make a talking-head video from an image and audio with a trained checkpoint",
        description="Long audio is generated as chained clips through motion frames and streamed into OUT.mp4.",
    )
    animate.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint folder, or a run folder (newest)")
    animate.add_argument("--image", required=True, help="reference portrait (centre square crop is used)")
    animate.add_argument("--audio", required=True, help="driving audio (any format ffmpeg reads)")
    animate.add_argument("-o", "--out", required=True, metavar="OUT.mp4", help="video to write")
    animate.add_argument("--face-box", metavar="X0,Y0,X1,Y1", help="face region in image pixels (default: detected)")
    animate.add_argument("--face-scale", type=float, default=1.0,
                         help="grow the face region about its centre (room for head motion; default 1.0)")
    animate.add_argument("--speed", type=float, metavar="DEG_PER_S", help="constant head rotation speed (stage-3 models)")
    animate.add_argument("--audio-guidance", type=float, help="audio guidance scale (default: the model config's)")
    animate.add_argument("--reference-guidance", type=float, help="reference guidance scale (default: the config's)")
    animate.add_argument("--steps", type=int, help="DDIM steps (default: the config's sampling_steps)")
    animate.add_argument("--seed", type=int, default=0)
    animate.add_argument("--device", default="auto", help="auto, cpu, cuda")
    animate.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    animate.add_argument("--vae", metavar="DIR", help="the VAE folder, if the checkpoint's is elsewhere")
    animate.add_argument("--wav2vec2", metavar="DIR", help="wav2vec2 folder, for models trained on wav2vec2 features")
    animate.set_defaults(run=_animate)


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")


def resolve_config(name_or_file: str, settings: list[str], stage: int, vae: str | None):
    from .run_config import apply_overrides, load_run_config, merge

    config = apply_overrides(load_run_config(name_or_file), settings)
    config = merge(config, {"train": {"stage": stage}})
    if vae:
        config = merge(config, {"latents": {"kind": "vae", "vae_dir": str(Path(vae).resolve())}})
    return config


def _train(args: argparse.Namespace) -> int:
    from emoforge.errors import UserError

    if args.vae and not Path(args.vae).is_dir():
        raise UserError(f"--vae {args.vae}: no such folder")
    config = resolve_config(args.config, args.settings, args.stage, args.vae)
    from .loop import Trainer

    Trainer(config, args.shards, args.out, init=args.init, resume=args.resume, device=args.device, say=_say).fit()
    return 0


def _parse_box(text: str | None):
    from emoforge.errors import UserError

    if text is None:
        return None
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise UserError(f"--face-box {text!r}: give X0,Y0,X1,Y1 in image pixels with X1 > X0 and Y1 > Y0")
    return box


def _animate(args: argparse.Namespace) -> int:
    from emoforge.errors import UserError

    for flag, path in (("--image", args.image), ("--audio", args.audio)):
        if not Path(path).is_file():
            raise UserError(f"{flag} {path}: no such file")
    if not Path(args.out).suffix.lower() == ".mp4":
        raise UserError(f"-o {args.out}: the output is an .mp4 file")
    if args.face_scale <= 0 or (args.steps is not None and args.steps < 1):
        raise UserError("--face-scale must be > 0 and --steps >= 1")
    box = _parse_box(args.face_box)
    from .animate import animate

    path = animate(args.checkpoint, args.image, args.audio, args.out, face_box=box, face_scale=args.face_scale,
                   speed=args.speed, audio_guidance=args.audio_guidance, reference_guidance=args.reference_guidance,
                   steps=args.steps, seed=args.seed, device=args.device, use_ema=not args.no_ema,
                   vae_dir=args.vae, wav2vec2_dir=args.wav2vec2, progress=_say)
    print(f"wrote {path}")
    return 0
