"""EMO inference (paper §3.2, §4.1): a reference image and an audio track -> a talking-head video.

Composed in numbered steps by `animate`:

1. load the checkpoint's network (EMA weights by default), its run config and speed buckets;
2. the reference image: centre square crop, resized to the model's resolution;
3. the face region M: a given box (image pixels) or MediaPipe's detection, scaled by `face_scale`;
4. audio features per video frame (the features the model was trained on), windowed ±m;
5. speed embedding: a constant head speed for every frame (§4.1), when given;
6. `generate_clips`, the long-video loop: clip after clip of f frames, each sampled with
   DDIM and the two guidance scales, the last n latents of a clip becoming the next
   clip's motion frames (the first clip has none: zero motion features);
7. each clip is decoded and streamed into the mp4, the audio muxed at the end.

`generate_clips` is a plain function over the model (the sampler stays apart from the
network); its `callback(clip, step, t, z)` reports progress.
"""

from __future__ import annotations

import io
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from emoforge.errors import UserError

from .ddim import ddim_sample
from .guidance import guided_epsilon_fn
from .run_config import RunConfig
from .schedule import alphas_cumprod

FPS = 25
AUDIO_RATE_HZ = 16000


@dataclass
class Conditions:
    """Everything one video is generated from, on the device; F = number of video frames."""

    reference_latent: torch.Tensor  # (1, 4, h, w)
    audio_windows: torch.Tensor  # (1, F, 2m+1, L, D), standardised as in training
    face_mask: torch.Tensor  # (1, 1, H, W)
    speed_embedding: torch.Tensor | None  # (1, F, (2m+1)d)

    @property
    def num_frames(self) -> int:
        return self.audio_windows.shape[1]


def generate_clips(model, codec, conditions: Conditions, config: RunConfig, *, steps: int, audio_scale: float,
                   reference_scale: float, seed: int = 0, eta: float = 0.0,
                   callback: Callable[[int, int, int, torch.Tensor], None] | None = None) -> Iterator[torch.Tensor]:
    """Yield the video clip by clip as pixels (3, f_k, H, W) in [-1, 1]; the clips together have F frames."""
    f, n = config.model.num_frames, config.model.num_motion_frames
    device = conditions.reference_latent.device
    alpha_bar = alphas_cumprod(config.model.diffusion)
    latent_hw = conditions.reference_latent.shape[-2:]
    generator = torch.Generator().manual_seed(seed)
    eta_generator = torch.Generator(device).manual_seed(seed + 1) if eta > 0 else None
    total = conditions.num_frames
    motion = None
    for clip, start in enumerate(range(0, total, f)):
        index = torch.arange(start, start + f).clamp(max=total - 1).to(device)  # past the end: the last frame's audio
        speed = conditions.speed_embedding[:, index] if conditions.speed_embedding is not None else None
        epsilon_fn = guided_epsilon_fn(
            model, conditions.reference_latent, conditions.audio_windows[:, index], motion_latents=motion,
            speed_embedding=speed, face_mask=conditions.face_mask, reference_scale=reference_scale,
            audio_scale=audio_scale)
        z_T = torch.randn((1, config.model.unet.in_channels, f, *latent_hw), generator=generator).to(device)
        step_callback = (lambda step, t, z, clip=clip: callback(clip, step, t, z)) if callback else None
        z_0 = ddim_sample(epsilon_fn, z_T, alpha_bar, steps, steps_offset=config.model.diffusion.steps_offset,
                          eta=eta, generator=eta_generator, callback=step_callback)
        motion = z_0[:, :, f - n:] if n > 0 else None  # the clip's last n latents drive the next clip
        yield codec.decode(z_0.float())[0, :, : min(f, total - start)]


# -- inputs --------------------------------------------------------------------------------
def load_image(path: str | Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read the image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def square_crop(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre square crop; returns it and its (x, y) offset in the image."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return rgb[y0: y0 + side, x0: x0 + side], (x0, y0)


def reference_pixels(rgb: np.ndarray, resolution: int) -> torch.Tensor:
    """(H, W, 3) uint8 square -> (3, res, res) in [-1, 1]."""
    import cv2

    resized = cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(resized).permute(2, 0, 1).float() / 127.5 - 1.0


def detect_face_box(rgb: np.ndarray) -> np.ndarray:
    from emoforge.labeling.faces import FaceDetector

    detector = FaceDetector()
    try:
        found = detector.detect(rgb)
    finally:
        detector.close()
    if not found:
        raise UserError("no face found in the image: give its region with --face-box X0,Y0,X1,Y1")
    return max(found, key=lambda d: d.score).box_xyxy_px


def face_mask(box_xyxy_px: np.ndarray, scale: float, side_px: int, resolution: int) -> torch.Tensor:
    """The face region M (1, 1, res, res): the box scaled about its centre by `scale`, in crop pixels -> model pixels."""
    from emoforge.labeling.mask import union_mask

    x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)
    cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale
    box = np.array([[cx - half_w, cy - half_h, cx + half_w, cy + half_h]]) * (resolution / side_px)
    mask = union_mask(np.clip(box, 0, resolution), resolution, resolution)
    if not mask.any():
        raise UserError(f"the face box {box_xyxy_px.tolist()} lies outside the image's centre square")
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def audio_features(samples_16k: np.ndarray, num_frames: int, config: RunConfig, wav2vec2_dir=None) -> torch.Tensor:
    """Per-frame features as the shards give them (log-mel (F, 320) or wav2vec2 (F, L, D)) -> (1, F, 2m+1, L, D)."""
    import soundfile

    from emoforge.shards.sampling import log_mel_per_frame

    audio_cfg = config.model.audio
    if audio_cfg.wav2vec_layers == 1:  # log-mel, computed exactly as the shards' sampler does (from FLAC bytes)
        flac = io.BytesIO()
        soundfile.write(flac, samples_16k, AUDIO_RATE_HZ, format="FLAC")
        per_frame = log_mel_per_frame(flac.getvalue(), num_frames, FPS)  # (F, 320)
    else:
        if not wav2vec2_dir:
            raise UserError(f"this model was trained on wav2vec2 features ({audio_cfg.wav2vec_layers} x "
                            f"{audio_cfg.wav2vec_dim}): give the wav2vec2 folder with --wav2vec2 DIR")
        from emoforge.labeling.audio import wav2vec2_hidden_states

        per_frame = wav2vec2_hidden_states(samples_16k, wav2vec2_dir, num_frames, FPS)  # (F, L, D)
    return windows_from_per_frame(per_frame, config)


def windows_from_per_frame(per_frame: np.ndarray, config: RunConfig) -> torch.Tensor:
    """(F, *S) per-frame audio features -> (1, F, 2m+1, L, D), windowed and standardised as in training."""
    from .audio import audio_windows
    from .objective import audio_windows_from_features

    windows = audio_windows(torch.from_numpy(np.asarray(per_frame, dtype=np.float32))[None], config.model.audio.window)
    return audio_windows_from_features(windows, config)


def speed_embedding(velocity_deg_per_s: float, buckets_path: Path, num_frames: int, config: RunConfig) -> torch.Tensor:
    from emoforge.labeling.speed import SpeedBuckets, constant_speed_embedding

    if not buckets_path.is_file():
        raise UserError(f"--speed needs the run's speed buckets ({buckets_path} is missing)")
    embedding = constant_speed_embedding(velocity_deg_per_s, SpeedBuckets.load(buckets_path), num_frames)
    if embedding.shape[1] != config.model.speed.embedding_dim:
        raise UserError(f"the speed buckets give {embedding.shape[1]} values per frame, the model expects "
                        f"{config.model.speed.embedding_dim}")
    return torch.from_numpy(embedding.astype(np.float32))[None]


# -- the pipeline ------------------------------------------------------------------------
def load_checkpoint_model(checkpoint: str | Path, use_ema: bool = True):
    """(model on the CPU, eval, no grad; its RunConfig; the checkpoint folder)."""
    from .checkpoint import load_ema, resolve_checkpoint
    from .io import load_model
    from .run_config import load_run_config

    folder = resolve_checkpoint(checkpoint)
    config = load_run_config(str(folder / "run_config.json"))
    model = load_model(folder / "model")
    if use_ema and (folder / "ema.safetensors").is_file():
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in load_ema(folder).items():
                parameters[name].copy_(tensor)
    return model.eval().requires_grad_(False), config, folder


def autocast_for(device: torch.device, precision: str):
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def render(model, codec, conditions: Conditions, config: RunConfig, out: Path, audio_16k: np.ndarray, *,
           steps: int, audio_scale: float, reference_scale: float, seed: int, precision: str = "auto",
           progress: Callable[[str], None] | None = None) -> Path:
    """Steps 6-7: sample clip after clip and stream them into `out` with the audio."""
    from .video import Mp4Writer, to_uint8_frames

    device = conditions.reference_latent.device
    writer = Mp4Writer(out, FPS, config.model.resolution)
    try:
        with torch.no_grad(), autocast_for(device, precision):
            clips = math.ceil(conditions.num_frames / config.model.num_frames)
            for k, video in enumerate(generate_clips(model, codec, conditions, config, steps=steps,
                                                     audio_scale=audio_scale, reference_scale=reference_scale,
                                                     seed=seed)):
                writer.write(to_uint8_frames(video))
                if progress:
                    progress(f"clip {k + 1}/{clips}: {writer.frames_written}/{conditions.num_frames} frames")
        return writer.close(audio_16k)
    except BaseException:
        writer.abort()
        raise


def animate(checkpoint, image, audio, out, *, face_box=None, face_scale: float = 1.0, speed: float | None = None,
            audio_guidance: float | None = None, reference_guidance: float | None = None, steps: int | None = None,
            seed: int = 0, device: str = "auto", use_ema: bool = True, vae_dir=None, wav2vec2_dir=None,
            progress: Callable[[str], None] | None = None) -> Path:
    from emoforge.labeling.audio import load_audio_16k_mono

    from .latents import make_latent_codec

    torch_device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                ("cpu" if device == "auto" else device))
    # 1. the network
    model, config, folder = load_checkpoint_model(checkpoint, use_ema)
    model.to(torch_device)
    latents_config = config.latents
    if vae_dir:
        import dataclasses

        latents_config = dataclasses.replace(latents_config, vae_dir=str(vae_dir))
    codec = make_latent_codec(latents_config, torch_device)
    resolution = config.model.resolution
    # 2. the reference image
    square, (x0, y0) = square_crop(load_image(image))
    reference = reference_pixels(square, resolution).to(torch_device)
    reference_latent = codec.encode(reference[None, :, None])[:, :, 0]
    # 3. the face region
    box = np.asarray(face_box, dtype=np.float64) - [x0, y0, x0, y0] if face_box is not None else detect_face_box(square)
    mask = face_mask(box, face_scale, square.shape[0], resolution).to(torch_device)
    # 4. audio features
    samples = load_audio_16k_mono(audio)
    num_frames = max(1, math.ceil(len(samples) / AUDIO_RATE_HZ * FPS))
    windows = audio_features(samples, num_frames, config, wav2vec2_dir).to(torch_device)
    # 5. speed
    speed_embed = speed_embedding(speed, folder / "speed_buckets.json", num_frames, config).to(torch_device) \
        if speed is not None else None
    conditions = Conditions(reference_latent, windows, mask, speed_embed)
    diffusion = config.model.diffusion
    # 6-7. sample and stream
    return render(model, codec, conditions, config, Path(out), samples,
                  steps=steps or diffusion.sampling_steps,
                  audio_scale=diffusion.audio_guidance if audio_guidance is None else audio_guidance,
                  reference_scale=diffusion.reference_guidance if reference_guidance is None else reference_guidance,
                  seed=seed, precision=config.train.precision, progress=progress)
