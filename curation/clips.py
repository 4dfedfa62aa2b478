"""Clips: cut a labelled span into fixed-length windows, filter each with
recorded reasons, and write the kept ones as 512x512 face-centred crops with their
audio and labels (``docs/clips.md``).

Filters (``FilterConfig``), each a reason when it fails: too short; face missing on
too many frames; face too small; head pose beyond range; too little speech; audio and
mouth out of sync; blurred face. Thresholds are config, so a data engineer calibrates
them on generated footage whose truth is known.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from emoforge.curation.config import ClipConfig, FilterConfig
from emoforge.files import npz_bytes
from emoforge.media import clip_video_options, encode_audio, yuv420_planes

CLIP_SCHEMA_VERSION = 1


@dataclass
class ClipPlan:
    clip_id: str
    start_frame: int  # in the span
    stop_frame: int
    keep: bool
    reason: str | None
    crop_xyxy_px: tuple[float, float, float, float] | None = None
    stats: dict = field(default_factory=dict)


def plan_clips(labels, span_id: str, span_offset_frame: int, clips: ClipConfig, filters: FilterConfig) -> list[ClipPlan]:
    """Windows of ``clip_s`` over the span (a short remainder joins the last window), each judged."""
    arrays, meta = labels.arrays, labels.meta
    n = int(meta["video"]["n_frames"])
    width, height = meta["video"]["width"], meta["video"]["height"]
    window = int(round(clips.clip_s * clips.fps))
    minimum = int(round(filters.min_clip_s * clips.fps))
    bounds = list(range(0, n, window)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < minimum:
        bounds.pop(-2)  # merge the short remainder into the previous window
    plans = []
    shot_offsets = {s["index"]: s for s in meta.get("shots", [])}
    for start, stop in zip(bounds[:-1], bounds[1:]):
        clip_id = f"{span_id}-{span_offset_frame + start:07d}-{span_offset_frame + stop:07d}"
        reason, stats = _judge(arrays, shot_offsets, start, stop, clips, filters)
        crop = _crop_box(arrays["box_xyxy_px"][start:stop], width, height, clips.face_scale) if reason is None else None
        if reason is None and crop is None:
            reason = "no face box to crop around"
        plans.append(ClipPlan(clip_id, start, stop, reason is None, reason, crop, stats))
    return plans


def _judge(arrays, shots, start, stop, clips: ClipConfig, filters: FilterConfig):
    frames = stop - start
    boxes = arrays["box_xyxy_px"][start:stop]
    present = np.isfinite(boxes).all(axis=1)
    face_width = boxes[present, 2] - boxes[present, 0]
    euler = arrays["yaw_pitch_roll_deg"][start:stop]
    pose_ok = np.isfinite(euler).all(axis=1)
    speech = arrays["speech"][start:stop].astype(bool)
    velocity = arrays["velocity_deg_per_s"][start:stop]
    stats = {
        "n_frames": frames,
        "face_fraction": float(present.mean()),
        "median_face_width_px": float(np.median(face_width)) if len(face_width) else 0.0,
        "p95_abs_yaw_deg": float(np.percentile(np.abs(euler[pose_ok, 0]), 95)) if pose_ok.any() else None,
        "p95_abs_pitch_deg": float(np.percentile(np.abs(euler[pose_ok, 1]), 95)) if pose_ok.any() else None,
        "mean_abs_yaw_deg": float(np.mean(np.abs(euler[pose_ok, 0]))) if pose_ok.any() else None,
        "speech_fraction": float(speech.mean()),
        "mean_velocity_deg_per_s": float(np.nanmean(velocity)) if np.isfinite(velocity).any() else None,
        "velocity_variance": float(np.nanvar(velocity)) if np.isfinite(velocity).any() else None,
    }
    shot_ids = np.unique(arrays["shot_id"][start:stop])
    offsets = [_dominant_sync_offset(shots[int(s)]) for s in shot_ids if int(s) in shots]
    offsets = [o for o in offsets if o is not None]
    stats["av_offset_frames"] = int(max(offsets, key=abs)) if offsets else None
    if frames < int(round(filters.min_clip_s * clips.fps)):
        return "clip too short", stats
    if present.mean() < filters.min_face_frames:
        return "face missing on too many frames", stats
    if stats["median_face_width_px"] < filters.min_face_width_px:
        return "face too small", stats
    if stats["p95_abs_yaw_deg"] is None:
        return "no head pose", stats
    if stats["p95_abs_yaw_deg"] > filters.max_abs_yaw_deg or stats["p95_abs_pitch_deg"] > filters.max_abs_pitch_deg:
        return "head pose out of range", stats
    if stats["speech_fraction"] < filters.min_speech_fraction:
        return "too little speech", stats
    if stats["av_offset_frames"] is not None and abs(stats["av_offset_frames"]) > filters.max_av_offset_frames:
        return "audio and video out of sync", stats
    return None, stats


def _dominant_sync_offset(shot: dict) -> int | None:
    """The mouth-audio offset (frames) the labeler measured for the shot's dominant face."""
    for track in shot.get("tracks", []):
        if track.get("track_id") == shot.get("dominant_track_id"):
            return track.get("sync_offset_frames")
    return None


def _crop_box(boxes: np.ndarray, width: int, height: int, face_scale: float):
    """A square around the union of the window's face boxes, ``face_scale`` times the face,
    kept inside the frame (shrunk if the frame is too small)."""
    boxes = boxes[np.isfinite(boxes).all(axis=1)]
    if not len(boxes):
        return None
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    face_side = max(np.median(boxes[:, 2] - boxes[:, 0]), np.median(boxes[:, 3] - boxes[:, 1]))
    side = min(max(face_scale * face_side, x1 - x0, y1 - y0), width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = float(np.clip(cx - side / 2, 0, width - side))
    top = float(np.clip(cy - side / 2, 0, height - side))
    return (left, top, left + float(side), top + float(side))


def write_clip(reader, frames, audio_16k: np.ndarray, labels, plan: ClipPlan, out_dir: Path, clips: ClipConfig,
               filters: FilterConfig, provenance: dict, source_id: str, span_start_s: float) -> ClipPlan:
    """Crop, encode and write one planned clip; the sharpness filter is judged here (it needs pixels).

    ``frames`` yields the span's ``(k, decoded frame)`` from ``reader`` (a ``span.SpanReader``)
    in order, from the clip's first frame or before it; this clip's frames are taken from it,
    so consecutive clips share one decode.

    Files are written under temporary names; the JSON goes last, so a clip exists when its JSON does.
    Whatever happens, no temporary file is left behind.
    """
    partial = [out_dir / f"{plan.clip_id}.{ext}.partial" for ext in ("mp4", "flac", "labels.npz", "json")]
    try:
        return _write_clip(reader, frames, audio_16k, labels, plan, out_dir, clips, filters, provenance, source_id, span_start_s)
    finally:
        for path in partial:
            path.unlink(missing_ok=True)


def _write_clip(reader, frames, audio_16k, labels, plan, out_dir, clips, filters, provenance, source_id, span_start_s):
    import av
    import soundfile

    size = clips.size_px
    x0, y0, x1, y1 = plan.crop_xyxy_px
    scale = size / (x1 - x0)
    affine = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    paths = {ext: out_dir / f"{plan.clip_id}.{ext}" for ext in ("mp4", "flac", "labels.npz", "json")}
    partial = {ext: p.with_name(p.name + ".partial") for ext, p in paths.items()}
    sharpness = []
    face_boxes = labels.arrays["box_xyxy_px"]
    audio = audio_16k[int(plan.start_frame * clips.audio_rate_hz / clips.fps) : int(plan.stop_frame * clips.audio_rate_hz / clips.fps)]
    with av.open(str(partial["mp4"]), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=clips.fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        video.options = clip_video_options(clips.crf, clips.keyframe_interval)
        video.codec_context.time_base = Fraction(1, clips.fps)
        sound = out.add_stream("aac", rate=clips.audio_rate_hz)
        sound.layout = "mono"
        written, last = 0, (None, None)  # a repeated source frame is cropped once
        for index, frame in frames:
            if index < plan.start_frame:
                continue
            if frame is not last[0]:
                # the crop straight from the decoded planes: the labels' coordinates scaled to the frame's
                picture, (sx, sy) = reader.displayed_yuv(frame)
                on_frame = np.float32([[affine[0, 0] * sx, 0, affine[0, 2]], [0, affine[1, 1] * sy, affine[1, 2]]])
                last = (frame, crop_yuv420(picture, on_frame, size))
            if written % 5 == 0 and np.isfinite(face_boxes[index]).all():
                sharpness.append(face_sharpness(reader.rgb(frame), face_boxes[index]))
            image = last[1]
            image.pts = written
            image.time_base = Fraction(1, clips.fps)
            for packet in video.encode(image):
                out.mux(packet)
            written += 1
            if index + 1 >= plan.stop_frame:
                break
        if written != plan.stop_frame - plan.start_frame:  # the same reader gave the labeler these frames
            raise RuntimeError(f"the span gave {written} of the clip's {plan.stop_frame - plan.start_frame} frames")
        for packet in video.encode(None):
            out.mux(packet)
        encode_audio(out, sound, audio[None], clips.audio_rate_hz)
    plan.stats["sharpness"] = float(np.median(sharpness)) if sharpness else None
    if plan.stats["sharpness"] is not None and plan.stats["sharpness"] < filters.min_sharpness:
        for p in partial.values():
            p.unlink(missing_ok=True)
        plan.keep, plan.reason = False, "face blurred"
        return plan
    soundfile.write(str(partial["flac"]), audio, clips.audio_rate_hz, format="FLAC")
    _write_npz(partial["labels.npz"], clip_label_arrays(labels.arrays, plan.start_frame, plan.stop_frame, affine, clips.fps))
    document = {
        "clip_id": plan.clip_id,
        "source_id": source_id,
        "schema_version": CLIP_SCHEMA_VERSION,
        "n_frames": plan.stop_frame - plan.start_frame,
        "fps": clips.fps,
        "size_px": size,
        "duration_s": (plan.stop_frame - plan.start_frame) / clips.fps,
        "source_span_s": [span_start_s + plan.start_frame / clips.fps, span_start_s + plan.stop_frame / clips.fps],
        "crop_xyxy_px": [round(float(v), 2) for v in plan.crop_xyxy_px],
        "stats": plan.stats,
        "provenance": provenance,
    }
    partial["json"].write_text(json.dumps(document, indent=1, allow_nan=False, sort_keys=True) + "\n")
    for ext in ("mp4", "flac", "labels.npz", "json"):  # JSON last: the commit marker
        os.replace(partial[ext], paths[ext])
    return plan


def crop_yuv420(frame, affine: np.ndarray, size: int):
    """The ``size`` x ``size`` crop ``affine`` (source px -> crop px: scale x and y, then shift) of a
    decoded frame (or its Y, U, V planes), as a yuv420p frame for the encoder.

    Each plane is warped on its own (chroma on its half-resolution grid), so a frame is
    never converted to RGB and back: a 720p frame's RGB conversion cost more than its crop,
    and the encoder converted the RGB crop back to yuv420p. Chroma samples sit at even luma
    columns and between luma rows (the MPEG-2, MPEG-4 and H.264 default), which fixes the
    chroma plane's shift. A crop that shrinks by more than 2 (a close-up in 1080p, any face
    in 4K) is area-averaged first (``_warp``): bilinear sampling alone would alias.
    """
    import av

    planes = tuple(frame) if isinstance(frame, (tuple, list)) else yuv420_planes(frame)
    sx, sy, dx, dy = float(affine[0, 0]), float(affine[1, 1]), float(affine[0, 2]), float(affine[1, 2])
    # luma x = 2 * chroma x, luma y = 2 * chroma y + 0.5 (in the source and in the crop alike)
    chroma = (sx, sy, dx / 2, (dy + 0.5 * sy - 0.5) / 2)
    planes = [_warp(plane, matrix, side)
              for plane, (matrix, side) in zip(planes, (((sx, sy, dx, dy), size), (chroma, size // 2), (chroma, size // 2)))]
    # from_ndarray's yuv420p layout: the Y rows, then U and V each flattened to size // 4 rows
    stacked = np.concatenate([p.reshape(-1) for p in planes]).reshape(size * 3 // 2, size)
    return av.VideoFrame.from_ndarray(stacked, format="yuv420p")


def _warp(plane: np.ndarray, matrix: tuple[float, float, float, float], side: int) -> np.ndarray:
    """``side`` x ``side`` pixels of ``plane`` under ``x' = sx x + dx, y' = sy y + dy`` (bilinear).

    Shrinking by ``f = floor(1 / s) >= 2``: the region the crop reads (plus a margin) is first
    averaged over f x f blocks, then warped by ``s f`` (between 0.5 and 1), so every crop pixel
    stands for the source pixels it covers. A block's mean sits at its centre, ``(f - 1) / 2``
    past its first pixel, which fixes the shift.
    """
    import cv2

    sx, sy, dx, dy = matrix
    factor = int(1.0 / max(sx, sy) + 1e-4) if max(sx, sy) < 1 else 1  # + 1e-4: a float32 1/3 is a factor of 3
    if factor >= 2:
        height, width = plane.shape
        margin = 2 * factor
        x0 = int(np.clip(np.floor(-dx / sx) - margin, 0, width))
        y0 = int(np.clip(np.floor(-dy / sy) - margin, 0, height))
        x1 = int(np.clip(np.ceil((side - dx) / sx) + margin, x0, width))
        y1 = int(np.clip(np.ceil((side - dy) / sy) + margin, y0, height))
        cols, rows = (x1 - x0) // factor, (y1 - y0) // factor
        if cols >= 2 and rows >= 2:
            region = plane[y0 : y0 + rows * factor, x0 : x0 + cols * factor]
            plane = cv2.resize(region, (cols, rows), interpolation=cv2.INTER_AREA)  # whole factor: block means
            dx += sx * (x0 + (factor - 1) / 2)
            dy += sy * (y0 + (factor - 1) / 2)
            sx, sy = sx * factor, sy * factor
    transform = np.float32([[sx, 0, dx], [0, sy, dy]])
    return cv2.warpAffine(plane, transform, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def face_sharpness(rgb: np.ndarray, box_xyxy_px: np.ndarray) -> float:
    """Variance of the Laplacian over the face box, on a 128-px-wide grey copy (scale-free)."""
    import cv2

    x0, y0, x1, y1 = np.round(box_xyxy_px).astype(int)
    face = rgb[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    if face.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (128, max(1, int(128 * grey.shape[0] / grey.shape[1]))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


# Per-frame arrays whose values are pixel x/y coordinates (last axis: x, y[, x, y] or x, y, z).
_PIXEL_ARRAYS = {"box_xyxy_px", "mesh_px", "det_box_xyxy_px", "det_face_box_xyxy_px"}


def clip_label_arrays(arrays: dict, start: int, stop: int, affine: np.ndarray, fps: int) -> dict:
    """The span's label arrays for frames ``[start, stop)``, pixels mapped into the crop.

    Per-frame arrays (first axis = frames) are sliced; per-detection arrays (``det_*``,
    indexed by ``det_frame``) keep the rows of the clip's frames, renumbered from 0.
    """
    n = len(arrays["frame_time_s"])
    scale, dx, dy = float(affine[0, 0]), float(affine[0, 2]), float(affine[1, 2])
    rows = (arrays["det_frame"] >= start) & (arrays["det_frame"] < stop) if "det_frame" in arrays else None
    out = {}
    for name, values in arrays.items():
        if name.startswith("det_") and rows is not None:
            values = values[rows]
            if name == "det_frame":
                values = values - start
        elif values.ndim >= 1 and len(values) == n:
            values = values[start:stop]
        else:
            out[name] = values
            continue
        if name in _PIXEL_ARRAYS:
            values = _to_crop(values, scale, dx, dy)
        out[name] = values
    out["frame_time_s"] = (np.arange(stop - start) / float(fps)).astype(np.float64) if "frame_time_s" in out else None
    return {k: v for k, v in out.items() if v is not None}


def _to_crop(values: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    """Source pixels -> crop pixels. Boxes are (..., 4) xyxy; points are (..., 2|3) xy[z]
    (a mesh's depth shares x's pixel scale); a mesh is kept as float16 x, y."""
    values = values.astype(np.float32)
    if values.shape[-1] == 4:
        return values * np.float32([scale, scale, scale, scale]) + np.float32([dx, dy, dx, dy])
    xy = values[..., :2] * scale + np.float32([dx, dy])
    return xy.astype(np.float16) if values.ndim == 3 else xy


def _write_npz(path: Path, arrays: dict) -> None:
    path.write_bytes(npz_bytes(arrays))
