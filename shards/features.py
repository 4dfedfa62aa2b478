"""Add cached features to built shards, without re-encoding or re-writing the video.

``add_features(shards_dir, vae_dir=..., audio="logmel"|"wav2vec2", wav2vec2_dir=...)``
rewrites each shard with two optional members per sample:

- ``<key>.latents.npy``: ``(F, 4, H/8, W/8)`` float16, the VAE posterior mean of every
  frame times the VAE's ``scaling_factor`` (SD's latent convention), from a diffusers
  ``AutoencoderKL`` folder; frames decoded at the stored size, scaled to [-1, 1].
- ``<key>.audio.npy``: ``(F, *S)`` float16 per video frame: log-mel ``(F, 320)`` (the
  four 10 ms mel frames inside each 40 ms video frame) or wav2vec2 hidden states
  ``(F, L+1, D)`` (``emoforge.labeling.audio.wav2vec2_hidden_states``).

The mp4, FLAC and label members are copied byte for byte; the sample's metadata gains
the new members' checksums and a ``features`` record (which model, its config hash).
Each shard is rewritten under a temporary name and renamed, then ``index.json`` is
updated, shard by shard; a shard whose samples cannot be read intact is left as it is
and reported. A rebuild (``emoforge shards build``) drops features: run this again.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from emoforge.errors import UserError
from emoforge.shards import format as fmt
from emoforge.shards.arrays import npy_bytes
from emoforge.shards.tario import bytes_sha256, iter_tar_samples, write_shard


@dataclass
class FeaturesReport:
    shards_done: list[str] = field(default_factory=list)
    shards_failed: dict[str, list[str]] = field(default_factory=dict)
    samples: int = 0


def _folder_hash(folder: Path) -> str:
    config = folder / "config.json"
    return hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else ""


class VaeEncoder:
    """Frames -> scaled latent means with a diffusers AutoencoderKL (loaded once)."""

    def __init__(self, vae_dir, device: str = "cpu", batch_frames: int = 16):
        import torch
        from diffusers import AutoencoderKL

        self.folder = Path(vae_dir)
        if not (self.folder / "config.json").is_file():
            raise UserError(f"{self.folder} is not a diffusers AutoencoderKL folder (no config.json)")
        self.vae = AutoencoderKL.from_pretrained(str(self.folder)).to(device).eval()
        self.device = device
        self.batch_frames = batch_frames
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.torch = torch

    def __call__(self, frames_fhwc_uint8: np.ndarray) -> np.ndarray:
        torch = self.torch
        latents = []
        with torch.no_grad():
            for begin in range(0, len(frames_fhwc_uint8), self.batch_frames):
                chunk = torch.from_numpy(frames_fhwc_uint8[begin : begin + self.batch_frames]).to(self.device)
                images = chunk.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (b, 3, H, W) in [-1, 1]
                mean = self.vae.encode(images).latent_dist.mean  # (b, 4, H/8, W/8)
                latents.append((mean * self.scaling_factor).to(torch.float16).cpu().numpy())
        return np.concatenate(latents)

    def record(self) -> dict:
        return {"vae": self.folder.name, "vae_config_sha256": _folder_hash(self.folder), "scaling_factor": self.scaling_factor}


def _audio_features(kind: str, flac: bytes, n_frames: int, fps: float, wav2vec2_dir) -> np.ndarray:
    if kind == "logmel":
        from emoforge.shards.sampling import log_mel_per_frame

        return log_mel_per_frame(flac, n_frames, fps).astype(np.float16)
    if kind == "wav2vec2":
        import soundfile

        from emoforge.labeling.audio import wav2vec2_hidden_states

        samples, _ = soundfile.read(io.BytesIO(flac), dtype="float32")
        return wav2vec2_hidden_states(samples, wav2vec2_dir, n_frames, fps).astype(np.float16)
    raise UserError(f"unknown audio feature kind {kind!r} (logmel, wav2vec2)")


def add_features(
    shards_dir,
    vae_dir=None,
    audio: str | None = None,
    wav2vec2_dir=None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> FeaturesReport:
    from emoforge.shards.decode import DecodeError, decode_frames
    from emoforge.shards.writer import load_index, write_json_atomic

    if vae_dir is None and audio is None:
        raise UserError("nothing to add: give a VAE folder and/or an audio feature kind")
    if audio == "wav2vec2" and not wav2vec2_dir:
        raise UserError("audio=wav2vec2 needs the wav2vec2 model folder")
    say = progress or (lambda message: None)
    folder = Path(shards_dir)
    index = load_index(folder)
    encoder = VaeEncoder(vae_dir, device) if vae_dir else None
    report = FeaturesReport()
    for entry in index["shards"]:
        problems: list[str] = []
        samples = []

        def on_problem(shard, key, reason):
            problems.append(f"{key}: {reason}" if key else reason)

        for raw in iter_tar_samples(folder / entry["name"], on_problem, check_checksums=True):
            meta = raw.meta
            n_frames, fps = int(meta["n_frames"]), float(meta["fps"])
            members = dict(raw.members)
            features = dict(meta.get("features") or {})
            try:
                if encoder is not None:
                    frames = decode_frames(members[fmt.VIDEO_MEMBER], range(n_frames), fps)
                    members[fmt.LATENTS_MEMBER] = npy_bytes(encoder(frames))
                    features["latents"] = encoder.record()
                if audio is not None:
                    members[fmt.AUDIO_FEATURES_MEMBER] = npy_bytes(_audio_features(audio, members[fmt.AUDIO_MEMBER], n_frames, fps, wav2vec2_dir))
                    features["audio"] = {"kind": audio, **({"model_config_sha256": _folder_hash(Path(wav2vec2_dir))} if audio == "wav2vec2" else {})}
            except DecodeError as exc:
                problems.append(f"{raw.key}: {exc}")
                continue
            meta["features"] = features
            meta["members"] = {
                name: {"sha256": bytes_sha256(data), "bytes": len(data)}
                for name, data in members.items()
                if name != fmt.META_MEMBER
            }
            members[fmt.META_MEMBER] = json.dumps(meta, indent=None, allow_nan=False, sort_keys=True).encode()
            ordered = [(name, members[name]) for name in fmt.MEMBER_ORDER if name in members]
            samples.append((raw.key, ordered))
        if problems or [key for key, _ in samples] != entry["keys"]:
            report.shards_failed[entry["name"]] = problems or ["samples differ from the index"]
            say(f"{entry['name']}: left as it is ({(problems or ['samples differ'])[0]})")
            continue
        written = write_shard(folder / entry["name"], samples)
        entry["sha256"], entry["bytes"] = written.sha256, written.size_bytes
        write_json_atomic(folder / fmt.INDEX_FILE, index)
        report.shards_done.append(entry["name"])
        report.samples += len(samples)
        say(f"{entry['name']}: {len(samples)} samples with features")
    return report
