"""Decode only the frames a sample needs, from mp4 bytes in memory (PyAV).

The container is demuxed once (no decoding) to learn each packet's frame index and
whether it is a keyframe. Wanted frames are grouped by GOP (the frames from one
keyframe to the next, in presentation order; x264 writes closed GOPs); each group is
decoded from its keyframe forward, and every packet whose frame is not wanted and that
no other frame references (``skip_frame = NONREF``: most B-frames) is not decoded at
all.

Frames come out as uint8 RGB, ``(N, H, W, 3)`` or, with ``channels_first``, ``(3, N, H, W)``
(the trainer's layout, written plane by plane: no transposing copy afterwards). Limited-range
yuv420p (what curation writes) is converted by OpenCV (BT.601, 3x faster than libswscale's
rgb24 path) and resized by ``cv2.resize`` (area when shrinking, bilinear when enlarging);
any other pixel format or range goes through libswscale.

``pixel_format="yuv420"`` skips the colour conversion: each frame is written as its
decoder planes, ``(3H/2, W)`` uint8 I420 (Y rows, then U and V at half size, BT.601
limited range: OpenCV's ``COLOR_YUV2RGB_I420`` layout), half the bytes of RGB; the
trainer converts on the device (``emoforge.shards.pixels.i420_to_unit_rgb``).

``threads`` codec threads (default 1, so that one dataloader worker is one core);
slice threading only, since a skip decision must apply to exactly the packet sent.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from emoforge.media import plane_pixels


class DecodeError(Exception):
    """The video bytes cannot give the wanted frames (damaged, too short)."""


@dataclass
class _Packet:
    packet: object
    index: int  # presentation index of the packet's frame, from 0
    keyframe: bool


@dataclass
class VideoPackets:
    """A demuxed video: its packets in decode order, with frame indices."""

    container: object
    context: object
    packets: list[_Packet]
    origin_pts: int
    time_base: float  # seconds per pts tick
    fps: float

    def __post_init__(self):
        self.time_base = float(self.time_base)  # Fraction arithmetic per packet costs ~10 ms a sample

    @property
    def n_frames(self) -> int:
        return len(self.packets)

    @property
    def keyframes(self) -> list[int]:
        """Frame indices of the keyframes, ascending."""
        return sorted(p.index for p in self.packets if p.keyframe)

    def frame_index(self, pts: int) -> int:
        return int(round((pts - self.origin_pts) * self.time_base * self.fps))


_NO_PROBING = {"probesize": "32", "analyzeduration": "0"}


def open_video(mp4_bytes: bytes, fps: float, threads: int = 1) -> VideoPackets:
    import av

    try:
        # The mp4 header says all a decoder needs: no probing (find_stream_info) beyond it (2.3 ms a sample).
        container = av.open(io.BytesIO(mp4_bytes), mode="r", options=_NO_PROBING)
        if not container.streams.video:
            container.close()
            raise DecodeError("no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_count = max(1, int(threads))
        context.thread_type = "SLICE"
        raw = [p for p in container.demux(stream) if p.size and p.pts is not None]
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(f"cannot read the video: {exc}") from None
    if not raw:
        container.close()
        raise DecodeError("the video stream holds no frame")
    origin = min(p.pts for p in raw)
    time_base = raw[0].time_base
    video = VideoPackets(container, context, [], origin, time_base, fps)
    video.packets = [_Packet(p, video.frame_index(p.pts), bool(p.is_keyframe)) for p in raw]
    return video


def decode_frames(mp4_bytes: "bytes | VideoPackets", indices, fps: float, size_px: tuple[int, int] | None = None, threads: int = 1,
                  channels_first: bool = False, into: list[np.ndarray] | None = None,
                  pixel_format: str = "rgb") -> np.ndarray | list[np.ndarray]:
    """Frames ``indices`` (any order, repeats allowed) as ``(len(indices), H, W, 3)`` uint8 RGB, or ``(3, len, H, W)``.

    ``mp4_bytes`` may be a video already opened by :func:`open_video` (it is closed here).
    ``size_px = (height, width)`` resizes; None keeps the stored size. ``into``: one
    ``(3, H, W)`` uint8 destination per index (any strides, each plane contiguous), written
    plane by plane and returned; the caller owns the memory (e.g. shared with another process).
    ``pixel_format="yuv420"``: frames are ``(3H/2, W)`` I420 instead (module doc): the result
    is ``(len(indices), 3H/2, W)``, and ``into`` holds one contiguous ``(3H/2, W)`` per index.
    Each frame is converted through one reused buffer and written to its destinations as
    it is decoded: no per-frame arrays (fresh memory costs page faults, ~1/4 of a sample's time).
    """
    import av

    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("no frame index asked for")
    if pixel_format not in ("rgb", "yuv420"):
        raise ValueError(f"pixel_format is 'rgb' or 'yuv420', not {pixel_format!r}")
    video = mp4_bytes if isinstance(mp4_bytes, VideoPackets) else open_video(mp4_bytes, fps, threads)
    height, width = size_px if size_px is not None else (video.context.height, video.context.width)
    if pixel_format == "yuv420" and (height % 2 or width % 2):
        video.container.close()
        raise DecodeError(f"I420 frames need an even size, not {width} x {height}")
    frame_shape = (3, height, width) if pixel_format == "rgb" else (height * 3 // 2, width)
    if into is not None:
        if len(into) != len(indices) or any(d.shape != frame_shape or d.dtype != np.uint8 for d in into):
            video.container.close()
            raise DecodeError(f"the destinations do not hold {len(indices)} frames of {' x '.join(map(str, frame_shape))} uint8")
        if pixel_format == "yuv420" and not all(d.flags.c_contiguous for d in into):
            video.container.close()
            raise DecodeError("I420 destinations must be contiguous")
        out, destinations = into, list(into)
    elif pixel_format == "yuv420":
        out = np.empty((len(indices), *frame_shape), np.uint8)  # (n, 3h/2, w)
        destinations = list(out)
    elif channels_first:
        out = np.empty((3, len(indices), height, width), np.uint8)  # (c, n, h, w)
        destinations = [out[:, position] for position in range(len(indices))]
    else:
        out = np.empty((len(indices), height, width, 3), np.uint8)  # (n, h, w, c)
        destinations = list(out)
    targets: dict[int, list[np.ndarray]] = {}
    for index, destination in zip(indices, destinations):
        targets.setdefault(index, []).append(destination)
    writer = _FrameWriter(size_px, (height, width), targets, pixel_format)
    try:
        with video.container:
            if max(indices) >= video.n_frames or min(indices) < 0:
                raise DecodeError(f"frames {min(indices)}..{max(indices)} asked of a video with {video.n_frames} frames")
            keyframes = video.keyframes
            if not keyframes or keyframes[0] > min(indices):
                raise DecodeError("no keyframe before the first wanted frame")
            groups: dict[int, set[int]] = {}
            for index in targets:
                gop = max(k for k in keyframes if k <= index)
                groups.setdefault(gop, set()).add(index)
            for gop in sorted(groups):
                _decode_group(video, gop, groups[gop], writer)
    except av.error.FFmpegError as exc:
        raise DecodeError(f"cannot decode the video: {exc}") from None
    return out


class _FrameWriter:
    """Converts a decoded frame once (into a reused buffer) and writes it to every destination of its index."""

    def __init__(self, size_px, out_hw: tuple[int, int], targets: dict[int, list[np.ndarray]], pixel_format: str = "rgb"):
        self.size_px, self.out_hw, self.targets, self.pixel_format = size_px, out_hw, targets, pixel_format
        self.done: set[int] = set()
        self.scratch = np.empty((*out_hw, 3), np.uint8) if pixel_format == "rgb" else None

    def write(self, index: int, frame) -> None:
        import cv2

        if index not in self.targets or index in self.done:
            return
        if (frame.height, frame.width) != self.out_hw and self.size_px is None:
            raise DecodeError(f"a frame of {frame.width} x {frame.height} px in a video of {self.out_hw[1]} x {self.out_hw[0]}")
        destinations = self.targets[index]
        if self.pixel_format == "yuv420":
            frame_i420(frame, self.out_hw, destinations[0])
            for destination in destinations[1:]:
                destination[...] = destinations[0]
        else:
            rgb = frame_rgb(frame, self.out_hw, self.scratch)
            for destination in destinations:
                if destination.shape[0] == 3:  # (3, H, W): plane by plane
                    cv2.split(rgb, [destination[0], destination[1], destination[2]])  # written in place
                else:
                    destination[...] = rgb
        self.done.add(index)


def _opencv_converts(frame) -> bool:
    """Limited-range yuv420p of even size: OpenCV's BT.601 I420 conversion is exact for it (range 2 is JPEG / full)."""
    return frame.format.name == "yuv420p" and frame.color_range != 2 and frame.height % 2 == 0 and frame.width % 2 == 0


def i420_planes(frame) -> np.ndarray:
    """A yuv420p frame of even size as one contiguous ``(3H/2, W)`` I420 array (what OpenCV converts)."""
    height, width = frame.height, frame.width
    into = np.empty((height * 3 // 2, width), np.uint8)
    into[:height] = plane_pixels(frame, 0)
    chroma = into[height:].reshape(2, height // 2, width // 2)  # U then V, (h/2, w/2) each
    chroma[0] = plane_pixels(frame, 1)
    chroma[1] = plane_pixels(frame, 2)
    return into


def frame_i420(frame, out_hw: tuple[int, int], into: np.ndarray) -> np.ndarray:
    """A decoded frame written into ``into``, a contiguous ``(3H/2, W)`` uint8 I420 array of size ``out_hw``.

    Limited-range yuv420p planes are copied (resized per plane when the size differs);
    any other format or range is converted to it by libswscale first.
    """
    import cv2

    height, width = out_hw
    if not _opencv_converts(frame):
        frame = frame.reformat(width=width, height=height, format="yuv420p", dst_color_range=1)  # 1: MPEG (limited)
    chroma = into[height:].reshape(2, height // 2, width // 2)
    for source, target in zip((plane_pixels(frame, 0), plane_pixels(frame, 1), plane_pixels(frame, 2)), (into[:height], chroma[0], chroma[1])):
        if source.shape == target.shape:
            target[...] = source
        else:
            cv2.resize(source, target.shape[::-1], dst=target, interpolation=_interpolation(source.shape[:2], target.shape[:2]))
    return into


def frame_rgb(frame, size_px: tuple[int, int] | None, scratch: np.ndarray | None = None) -> np.ndarray:
    """One decoded ``av.VideoFrame`` as ``(H, W, 3)`` uint8 RGB, resized to ``size_px = (height, width)``.

    ``scratch``: an ``(H, W, 3)`` uint8 buffer of the output size to convert into (returned).
    """
    import cv2

    out_hw = size_px if size_px is not None else (frame.height, frame.width)
    if _opencv_converts(frame):
        direct = scratch if (scratch is not None and scratch.shape == (frame.height, frame.width, 3)) else None
        rgb = cv2.cvtColor(i420_planes(frame), cv2.COLOR_YUV2RGB_I420, dst=direct)  # (h·3/2, w) I420 -> (h, w, 3)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    return _resized(rgb, out_hw, scratch)


def _resized(rgb: np.ndarray, out_hw: tuple[int, int], scratch: np.ndarray | None) -> np.ndarray:
    """``rgb`` at ``out_hw`` (area when shrinking, bilinear when enlarging), into ``scratch`` when it fits."""
    import cv2

    height, width = out_hw
    if rgb.shape[:2] == (height, width):
        return rgb
    target = scratch if (scratch is not None and scratch.shape == (height, width, 3)) else None
    return cv2.resize(rgb, (width, height), dst=target, interpolation=_interpolation(rgb.shape[:2], out_hw))


def _interpolation(from_hw: tuple[int, int], to_hw: tuple[int, int]) -> int:
    """Area averaging when shrinking, bilinear when enlarging."""
    import cv2

    return cv2.INTER_AREA if to_hw[0] * to_hw[1] < from_hw[0] * from_hw[1] else cv2.INTER_LINEAR


def _decode_group(video: VideoPackets, keyframe_index: int, wanted: set[int], writer: _FrameWriter) -> None:
    context = video.context
    context.flush_buffers()
    start = next(p for p, packet in enumerate(video.packets) if packet.keyframe and packet.index == keyframe_index)

    def keep(frame) -> None:
        if frame.pts is None:
            raise DecodeError("a decoded frame has no timestamp")
        writer.write(video.frame_index(frame.pts), frame)

    for packet in video.packets[start:]:
        # A frame nobody wants that no frame references need not be decoded.
        context.skip_frame = "DEFAULT" if packet.index in wanted else "NONREF"
        for frame in context.decode(packet.packet):
            keep(frame)
        if wanted <= writer.done:
            return
    context.skip_frame = "DEFAULT"
    for frame in context.decode(None):  # drain the reorder buffer
        keep(frame)
    missing = sorted(wanted - writer.done)
    if missing:
        raise DecodeError(f"frames {missing[:4]} did not decode")
