"""Synthetic curated clips that follow ``docs/clips.md``, for tests, benchmarks and trials.

Each clip is a moving, zooming crop of scikit-image's public-domain astronaut portrait
(real image texture, so H.264 sizes and decode costs are realistic), encoded the way
curation encodes clips (``emoforge.media.clip_video_options``: libx264 crf 18, a keyframe
every 12 frames, no B-frames, ``fastdecode``; yuv420p, 25 fps, AAC 16 kHz mono),
with a 16 kHz FLAC, a labels ``.npz`` whose face box follows the motion, and the clip
JSON written last. ``manifest.parquet`` lists sources and clips like curation's.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from emoforge.media import clip_video_options, encode_audio

FPS = 25
AUDIO_RATE_HZ = 16000
LICENSES = ("cc-by-4.0", "public-domain", "youtube-standard")


def _portrait(size_px: int) -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (size_px, size_px), interpolation=cv2.INTER_AREA)


def write_clip(
    folder: Path,
    clip_id: str,
    source_id: str,
    n_frames: int,
    size_px: int,
    rng: np.random.Generator,
    identity: str | None = None,
    license_name: str = "cc-by-4.0",
    crf: int = 18,
    gop_frames: int = 12,
    fast_decode: bool = True,
) -> dict:
    """Write the four files of one clip; returns its JSON document."""
    import av
    import cv2
    import soundfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    portrait = _portrait(size_px)
    phase = rng.uniform(0, 2 * np.pi, 3)
    amplitude_deg = rng.uniform(2, 12)
    t = np.arange(n_frames)
    angle_deg = amplitude_deg * np.sin(t / 8 + phase[0])
    shift_px = 0.06 * size_px * np.sin(t / 6 + phase[1])
    zoom = 1 + 0.05 * np.sin(t / 9 + phase[2])
    centre = size_px / 2
    face_half_px = 0.18 * size_px * zoom
    boxes = np.stack(
        [centre + shift_px - face_half_px, centre * 0.8 - face_half_px, centre + shift_px + face_half_px, centre * 0.8 + face_half_px],
        axis=1,
    ).astype(np.float32)
    no_face = rng.random(n_frames) < 0.05
    boxes[no_face] = np.nan
    # Angles as the labeler gives them; velocity from the yaw track (deg/s), NaN without a face.
    ypr = np.stack([angle_deg, 0.5 * angle_deg, 0.2 * angle_deg], axis=1).astype(np.float32)
    ypr[no_face] = np.nan
    velocity = np.abs(np.gradient(angle_deg)) * FPS
    velocity = velocity.astype(np.float32)
    velocity[no_face] = np.nan
    speech = (np.sin(t / 5 + phase[0]) > -0.3)
    audio_t = np.arange(int(round(n_frames / FPS * AUDIO_RATE_HZ))) / AUDIO_RATE_HZ
    audio = (0.2 * np.sin(2 * np.pi * 220 * audio_t) + 0.02 * rng.standard_normal(len(audio_t))).astype(np.float32)

    mp4 = folder / f"{clip_id}.mp4"
    with av.open(str(mp4), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width = video.height = size_px
        video.pix_fmt = "yuv420p"
        video.options = clip_video_options(crf, gop_frames, fast_decode)
        video.codec_context.time_base = Fraction(1, FPS)
        sound = out.add_stream("aac", rate=AUDIO_RATE_HZ)
        sound.layout = "mono"
        for k in range(n_frames):
            matrix = cv2.getRotationMatrix2D((centre, centre), float(angle_deg[k]), float(zoom[k]))
            matrix[0, 2] += shift_px[k]
            rgb = cv2.warpAffine(portrait, matrix, (size_px, size_px), borderMode=cv2.BORDER_REFLECT)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        encode_audio(out, sound, audio[None], AUDIO_RATE_HZ)
    soundfile.write(str(folder / f"{clip_id}.flac"), audio, AUDIO_RATE_HZ, format="FLAC")
    pose_valid = np.isfinite(ypr).all(axis=1)
    np.savez_compressed(
        folder / f"{clip_id}.labels.npz",
        frame_time_s=(t / FPS).astype(np.float64),
        box_xyxy_px=boxes,
        yaw_pitch_roll_deg=ypr,
        pose_valid=pose_valid,
        translation_mm=np.where(pose_valid[:, None], np.float32([0, 0, 600]), np.nan).astype(np.float32),
        velocity_deg_per_s=velocity,
        speech=speech,
        mesh_px=np.zeros((n_frames, 4, 3), np.float32),
        det_frame=np.arange(n_frames, dtype=np.int32)[~no_face],
    )
    face_width = boxes[~no_face, 2] - boxes[~no_face, 0]
    document = {
        "clip_id": clip_id,
        "source_id": source_id,
        "schema_version": 1,
        "n_frames": n_frames,
        "fps": FPS,
        "size_px": size_px,
        "duration_s": n_frames / FPS,
        "source_span_s": [0.0, n_frames / FPS],
        "crop_xyxy_px": [0, 0, size_px, size_px],
        "stats": {
            "mean_velocity_deg_per_s": float(np.nanmean(velocity)),
            "velocity_variance": float(np.nanvar(velocity)),
            "speech_fraction": float(speech.mean()),
            "median_face_width_px": float(np.median(face_width)),
            "mean_abs_yaw_deg": float(np.nanmean(np.abs(ypr[:, 0]))),
            "sharpness": 100.0,
            "av_offset_frames": 0,
        },
        "provenance": {"url": f"https://example.org/{source_id}", "title": f"synthetic {source_id}", "license": license_name},
    }
    if identity is not None:
        document["identity"] = identity
    (folder / f"{clip_id}.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


def make_curated_corpus(
    out_dir,
    sources: int = 4,
    clips_per_source: int = 2,
    n_frames: int | tuple[int, int] = 30,
    size_px: int = 64,
    seed: int = 0,
    identities: dict[str, str] | None = None,
    gop_frames: int = 12,
) -> list[dict]:
    """A curation output folder: ``clips/`` and ``manifest.parquet``; returns the clip JSON documents.

    ``identities`` maps source ids (``src0``, ``src1``...) to a face identity written into
    their clips' JSON. ``n_frames`` may be a ``(low, high)`` range drawn per clip.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    documents, rows = [], []
    for s in range(sources):
        source_id = f"src{s}"
        rows.append({"row_kind": "source", "clip_id": None, "source_id": source_id, "status": "kept", "reason": None})
        start = 0
        for _ in range(clips_per_source):
            frames = n_frames if isinstance(n_frames, int) else int(rng.integers(n_frames[0], n_frames[1] + 1))
            clip_id = f"{source_id}-{start:07d}-{start + frames:07d}"
            start += frames
            document = write_clip(
                out_dir / "clips", clip_id, source_id, frames, size_px, rng,
                identity=(identities or {}).get(source_id), license_name=LICENSES[s % len(LICENSES)],
                gop_frames=gop_frames,
            )
            documents.append(document)
            rows.append({"row_kind": "clip", "clip_id": clip_id, "source_id": source_id, "status": "kept", "reason": None})
    pd.DataFrame(rows).to_parquet(out_dir / "manifest.parquet", index=False)
    return documents
