"""Turn one raw shard sample into a training sample for EMO's stages (paper §3.3, §4.1). No torch here.

Stage 1 (image pretraining): a target frame and a *different* reference frame of the
same clip, both uniform; the face mask is the target frame's face box (``M`` of §3.2
with f = 1), the clip's union when that frame has no box.

Stages 2 and 3 (video): ``n`` motion frames + ``f`` frames, contiguous, at a uniform
start; the reference is uniform over the clip's frames outside the ``f`` target frames
(it may be one of the motion frames, never a frame being generated). Audio features
per frame windowed ±m (edges repeated), the union face mask ``M = ∪ M^i`` over the
``f`` frames (§3.2), and the speed embedding ``S^f`` over ±m (§3.2) of the ``f`` frames.

Every random choice comes from ``rng``; the dataset seeds it from (seed, epoch, key),
so a clip's sample in an epoch does not depend on which worker reads it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from emoforge.shards import format as fmt
from emoforge.shards.arrays import load_npy, load_npz
from emoforge.shards.decode import decode_frames


class SampleError(Exception):
    """A sample cannot be served; ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class SampleConfig:
    stage: int = 2
    size_px: int | None = 512  # output frames are size x size; None keeps the clip's size
    motion_frames: int = 4  # n (paper §4.1)
    frames: int = 12  # f
    window_m: int = 2  # m: audio and speed windows are ±m frames
    use_cached_audio: bool = True  # the shard's audio.npy when present, else log-mel from the FLAC
    use_cached_latents: bool = False  # stages 2-3: "latents" from latents.npy instead of decoding frames
    decode_threads: int = 1
    # Stages 2-3: "any" frame starts a window (uniform, the paper); "keyframes": windows
    # start on the clip's keyframes (every 12th frame of a curated clip), so no frame before
    # them is decoded, for fewer distinct windows per clip (docs/format.md).
    window_starts: str = "any"
    # Stages 2-3: the reference is uniform over the clip's keyframes outside the f targets
    # ("keyframes": one frame decoded, nothing before it) or over all its frames outside them
    # ("any": up to 11 more frames decoded to reach it). Without keyframes to draw from: "any".
    reference_at: str = "keyframes"

    def __post_init__(self):
        if self.stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {self.stage}")
        if self.frames < 1 or self.motion_frames < 0 or self.window_m < 0:
            raise ValueError("frames >= 1, motion_frames >= 0 and window_m >= 0 are required")
        if self.window_starts not in ("any", "keyframes"):
            raise ValueError(f"window_starts is 'any' or 'keyframes', got {self.window_starts!r}")
        if self.reference_at not in ("any", "keyframes"):
            raise ValueError(f"reference_at is 'any' or 'keyframes', got {self.reference_at!r}")


def _window_index(frames: np.ndarray, m: int, n_frames: int) -> np.ndarray:
    """``(len(frames), 2m+1)``: frame f's neighbours f-m..f+m, clip edges repeated (as ``speed_embedding``)."""
    return np.clip(frames[:, None] + np.arange(-m, m + 1)[None, :], 0, n_frames - 1)


def log_mel_per_frame(flac_bytes: bytes, n_frames: int, fps: float, frames: tuple[int, int] | None = None) -> np.ndarray:
    """``(F, k·80)`` float32: the ``k = 100 / fps`` log-mel frames (10 ms hop) inside each video frame's span.

    ``frames = (first, stop)`` computes only video frames ``first .. stop-1`` (the same
    values as the whole clip's rows).
    """
    from emoforge.labeling.audio import log_mel

    per_frame = 100.0 / fps
    if abs(per_frame - round(per_frame)) > 1e-6:
        raise SampleError("bad_audio", f"{fps} fps is not a divisor of log-mel's 100 frames per second")
    k = int(round(per_frame))
    first, stop = (0, n_frames) if frames is None else frames
    samples = _read_flac(flac_bytes, (first * k, stop * k))
    # Rows past the signal's last mel frame repeat it (log_mel does), up to n_frames * k.
    mel = log_mel(samples, rows=(first * k, stop * k))  # (T, 80), row t centred on t * 10 ms
    return mel.reshape(stop - first, k * mel.shape[1])  # (F, k·80), frame f holds mel rows f·k .. f·k+k-1


def _read_flac(flac_bytes: bytes, mel_rows: tuple[int, int]) -> np.ndarray:
    """The clip's 16 kHz mono samples, float32, decoded only where log-mel rows ``mel_rows`` look (zeros elsewhere).

    FLAC seeks to a sample exactly; decoding the ~0.7 s a stage-2 sample needs instead of the
    whole clip saves ~0.8 ms a sample. The span is the one ``log_mel(rows=...)`` reads.
    """
    import soundfile

    from emoforge.labeling.audio import log_mel_samples

    try:
        with soundfile.SoundFile(io.BytesIO(flac_bytes)) as audio:
            if audio.samplerate != 16000 or audio.channels != 1:
                raise SampleError("bad_audio", f"{audio.samplerate} Hz, {audio.channels} channels")
            total = audio.frames
            low, high = log_mel_samples(total, mel_rows)
            samples = np.zeros(total, np.float32)
            if high > low:
                audio.seek(low)
                part = audio.read(high - low, dtype="float32", always_2d=False)
                samples[low: low + len(part)] = part
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise SampleError("bad_audio", str(exc)) from None
    return samples


def _face_mask(boxes_xyxy_px: np.ndarray, frames: np.ndarray, clip_size_px: tuple[int, int], out_size_px: tuple[int, int]) -> np.ndarray:
    from emoforge.labeling.mask import union_mask

    clip_h, clip_w = clip_size_px
    out_h, out_w = out_size_px
    scale = np.array([out_w / clip_w, out_h / clip_h, out_w / clip_w, out_h / clip_h])
    chosen = boxes_xyxy_px[frames]
    if not np.isfinite(chosen).all(axis=1).any():
        chosen = boxes_xyxy_px  # no box on these frames: the clip's union
    mask = union_mask(chosen * scale, out_h, out_w)
    if not mask.any():
        raise SampleError("no_face", "no face box on any frame")
    return mask


def make_sample(members: dict[str, bytes], meta: dict, config: SampleConfig, rng: np.random.Generator,
                allocate=np.empty, pixel_format: str = "rgb") -> dict[str, np.ndarray]:
    """Numpy arrays of one training sample (layouts in docs/format.md); raises SampleError.

    ``allocate(shape, dtype)`` makes the uint8 picture arrays, which frames are decoded
    straight into (the dataset gives memory shared with the training process).
    ``pixel_format="yuv420"``: pictures are I420 planes, ``(3H/2, W)`` a frame (shards/pixels.py),
    instead of ``(3, H, W)`` RGB.
    """
    n_frames = int(meta["n_frames"])
    fps = float(meta["fps"])
    clip_size = int(meta.get("size_px") or 0)
    try:
        labels = load_npz(members[fmt.LABELS_MEMBER], (fmt.BOX,) if config.stage == 1 else (fmt.BOX, fmt.SPEED_VECTORS))
    except (ValueError, OSError, KeyError) as exc:
        raise SampleError("bad_labels", str(exc)) from None
    boxes = labels[fmt.BOX].astype(np.float64)
    out = config.size_px or clip_size
    if out <= 0:
        raise SampleError("bad_meta", "the clip's metadata has no size_px")
    size = None if (config.size_px is None or config.size_px == clip_size) else (config.size_px, config.size_px)
    clip_hw = (clip_size, clip_size)
    if pixel_format == "yuv420" and out % 2:
        raise SampleError("bad_size", f"I420 pictures need an even size, not {out}")
    picture = (3, out, out) if pixel_format == "rgb" else (out * 3 // 2, out)  # one frame's layout

    def pictures_of(count: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """``count`` frames in one array (RGB: (3, count, H, W); I420: (count, 3H/2, W)) and a view per frame."""
        if pixel_format == "rgb":
            array = allocate((3, count, out, out), np.uint8)
            return array, [array[:, k] for k in range(count)]
        array = allocate((count, *picture), np.uint8)
        return array, list(array)

    if config.stage == 1:
        target = int(rng.integers(n_frames))
        reference = int(rng.integers(n_frames - 1))
        reference += reference >= target  # uniform over the other frames
        pictures = {"target": allocate(picture, np.uint8), "reference": allocate(picture, np.uint8)}
        _decode(members[fmt.VIDEO_MEMBER], [target, reference], fps, size, config, list(pictures.values()), pixel_format)
        return {
            **pictures,
            "face_mask": _face_mask(boxes, np.array([target]), clip_hw, (out, out)),
            "target_index": np.int64(target),
            "reference_index": np.int64(reference),
        }

    n, f, m = config.motion_frames, config.frames, config.window_m
    if n_frames < n + f:
        raise SampleError("too_short", f"{n_frames} frames < n + f = {n + f}")
    video = None  # opened here when the keyframes choose frames
    starts, references = np.arange(n_frames - (n + f) + 1), np.arange(n_frames)
    if "keyframes" in (config.window_starts, config.reference_at) and not config.use_cached_latents:
        video = _open(members, fps, config)
        keyframes = np.array(video.keyframes)
        if config.window_starts == "keyframes" and keyframes[keyframes < len(starts)].size:  # else: uniform
            starts = keyframes[keyframes < len(starts)]
        references = keyframes  # with window_starts="keyframes" too, whatever reference_at says
    start = int(rng.choice(starts))
    window = np.arange(start, start + n + f)
    targets = window[n:]
    others = np.setdiff1d(references, targets)
    if not len(others):
        others = np.setdiff1d(np.arange(n_frames), targets)
    reference = int(rng.choice(others)) if len(others) else int(window[0])
    if config.use_cached_latents:
        if fmt.LATENTS_MEMBER not in members:
            raise SampleError("no_latents", "the shard has no cached latents (emoforge shards features)")
        latents = load_npy(members[fmt.LATENTS_MEMBER])  # (F, 4, h, w)
        pictures = {
            "latents": np.moveaxis(latents[window].astype(np.float32), 0, 1),  # (4, n+f, h, w)
            "reference_latent": latents[reference].astype(np.float32),  # (4, h, w)
        }
        out = clip_size  # latents are of the stored frames: the mask stays at clip size
    else:
        if pixel_format == "rgb":
            frames, per_frame = pictures_of(n + f)
            pictures = {"frames": frames, "reference": allocate(picture, np.uint8)}
        else:  # one block, the reference last: one allocation (shared memory) a sample
            block, per_frame = pictures_of(n + f + 1)
            pictures, per_frame = {"frames": block[: n + f], "reference": block[n + f]}, per_frame[: n + f]
        _decode(video or members[fmt.VIDEO_MEMBER], list(window) + [reference], fps, size, config,
                per_frame + [pictures["reference"]], pixel_format)

    neighbours = _window_index(targets, m, n_frames)  # (f, 2m+1)
    if config.use_cached_audio and fmt.AUDIO_FEATURES_MEMBER in members:
        per_frame_audio = load_npy(members[fmt.AUDIO_FEATURES_MEMBER])
        if per_frame_audio.shape[0] != n_frames:
            raise SampleError("bad_audio", f"cached audio has {per_frame_audio.shape[0]} frames, the clip {n_frames}")
        audio = per_frame_audio[neighbours].astype(np.float32)  # (f, 2m+1, *S)
    else:  # log-mel of the needed frames only
        first, stop = int(neighbours.min()), int(neighbours.max()) + 1
        audio = log_mel_per_frame(members[fmt.AUDIO_MEMBER], n_frames, fps, (first, stop))[neighbours - first]

    speed_vectors = labels[fmt.SPEED_VECTORS].astype(np.float32)  # (F, d), NaN where no velocity
    speed = speed_vectors[neighbours]  # (f, 2m+1, d)
    speed_valid = np.isfinite(speed).all(axis=(1, 2))
    speed = np.nan_to_num(speed, nan=0.0).reshape(f, -1)  # (f, (2m+1)·d), s^(t-m) first
    return {
        **pictures,
        "audio": audio,
        "face_mask": _face_mask(boxes, targets, clip_hw, (out, out)),
        "speed": speed,
        "speed_valid": speed_valid,
        "window_start": np.int64(start),
        "reference_index": np.int64(reference),
    }


def _open(members, fps: float, config: SampleConfig):
    from emoforge.shards.decode import DecodeError, open_video

    try:
        return open_video(members[fmt.VIDEO_MEMBER], fps, config.decode_threads)
    except DecodeError as exc:
        raise SampleError("decode_error", str(exc)) from None


def _decode(video, indices, fps, size, config: SampleConfig, into: list[np.ndarray], pixel_format: str) -> None:
    from emoforge.shards.decode import DecodeError

    try:
        decode_frames(video, indices, fps, size, config.decode_threads, into=into, pixel_format=pixel_format)
    except DecodeError as exc:
        raise SampleError("decode_error", str(exc)) from None
