"""Periodic validation: a short video from a held-out clip's reference frame and audio (issue 6).

The clip is the first sample of the first shard of the `data.val_split` split (the
train split when there is none): its frame 0 is the reference, its first
`train.validation_seconds` of audio drive the video, the union of its face boxes over
those frames is the face region, and in stage 3 its own speed vectors are the speed
condition. Sampled with the EMA weights and the config's DDIM steps and guidance,
written as `validation/step-N.mp4` with the clip's audio.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .animate import FPS, Conditions, audio_features, render, windows_from_per_frame
from .run_config import RunConfig


@dataclass
class HeldOutClip:
    key: str
    members: dict[str, bytes]
    meta: dict


def held_out_clip(shards: Path, split: str) -> HeldOutClip:
    from emoforge.errors import UserError
    from emoforge.shards.dataset import shard_paths
    from emoforge.shards.tario import iter_tar_samples

    for name in (split, "train"):
        try:
            paths = shard_paths(shards, name)
        except (UserError, FileNotFoundError, ValueError):  # tars without an index.json
            paths = sorted(Path(shards).glob(f"{name}-*.tar"))
        for path in paths:
            for raw in iter_tar_samples(path, lambda *a: None, check_checksums=True):
                return HeldOutClip(raw.key, dict(raw.members), raw.meta)
    raise UserError(f"no readable clip in {shards} for validation")


def clip_conditions(clip: HeldOutClip, codec, config: RunConfig, seconds: float,
                    device: torch.device) -> tuple[Conditions, np.ndarray]:
    import soundfile

    from emoforge.labeling.mask import union_mask
    from emoforge.labeling.speed import speed_embedding
    from emoforge.shards import format as fmt
    from emoforge.shards.arrays import load_npy, load_npz
    from emoforge.shards.decode import decode_frames

    resolution = config.model.resolution
    n_frames = min(int(clip.meta["n_frames"]), max(1, round(seconds * FPS)))
    reference = decode_frames(clip.members[fmt.VIDEO_MEMBER], [0], float(clip.meta["fps"]), (resolution, resolution))[0]
    pixels = torch.from_numpy(reference).permute(2, 0, 1).float().to(device) / 127.5 - 1.0  # (3, H, W)
    reference_latent = codec.encode(pixels[None, :, None])[:, :, 0]
    samples, _rate = soundfile.read(io.BytesIO(clip.members[fmt.AUDIO_MEMBER]), dtype="float32")
    samples = samples[: round(n_frames / FPS * 16000)]
    labels = load_npz(clip.members[fmt.LABELS_MEMBER])
    scale = resolution / float(clip.meta["size_px"])
    boxes = labels[fmt.BOX][:n_frames].astype(np.float64) * scale
    mask = union_mask(boxes if np.isfinite(boxes).all(axis=1).any() else labels[fmt.BOX] * scale, resolution, resolution)
    if fmt.AUDIO_FEATURES_MEMBER in clip.members:  # the shards' cached features (e.g. wav2vec2)
        windows = windows_from_per_frame(load_npy(clip.members[fmt.AUDIO_FEATURES_MEMBER])[:n_frames], config)
    else:
        windows = audio_features(samples, n_frames, config)
    speed = None
    if config.train.stage == 3:
        vectors = np.nan_to_num(labels[fmt.SPEED_VECTORS].astype(np.float32), nan=0.0)
        speed = torch.from_numpy(speed_embedding(vectors, config.model.speed.window)[:n_frames])[None].to(device)
    conditions = Conditions(
        reference_latent=reference_latent,
        audio_windows=windows.to(device),
        face_mask=torch.from_numpy(mask.astype(np.float32))[None, None].to(device),
        speed_embedding=speed)
    return conditions, samples


def validation_video(model, codec, config: RunConfig, shards: Path, out: Path, device: torch.device,
                     write: bool = True) -> Path | None:
    """Sample the held-out clip's video into `out` (every FSDP rank runs it; only `write` ranks keep the file)."""
    clip = held_out_clip(Path(shards), config.data.val_split)
    conditions, samples = clip_conditions(clip, codec, config, config.train.validation_seconds, device)
    diffusion = config.model.diffusion
    target = out if write else out.with_name(f".{out.stem}.discard.mp4")
    path = render(model, codec, conditions, config, target, samples,
                  steps=config.train.validation_steps or diffusion.sampling_steps,
                  audio_scale=diffusion.audio_guidance, reference_scale=diffusion.reference_guidance,
                  seed=config.train.seed, precision=config.train.precision)
    if not write:
        path.unlink(missing_ok=True)
        return None
    return path
