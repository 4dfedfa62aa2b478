"""Write generated footage as the formats found online, with PyAV.

Each :class:`VideoFormat` names a container and codecs, a displayed frame size, a
frame rate (or variable timing) and optional rotation metadata. Frames are given in
*displayed* orientation; a rotated format stores them turned and records the display
rotation, as phones do, so readers must apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emoforge.media import encode_audio


@dataclass(frozen=True)
class VideoFormat:
    name: str
    container: str  # "mp4" | "webm" | "mkv"
    video_codec: str  # an FFmpeg encoder name
    audio_codec: str
    width: int  # displayed size
    height: int
    fps: Fraction  # nominal rate; for variable timing, the mean rate
    audio_rate_hz: int = 48000
    audio_channels: int = 2
    variable_frame_rate: bool = False
    display_rotation_deg: int = 0  # 0, 90, 180 or 270: stored frames are turned by this much

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the frames as stored in the file."""
        if self.display_rotation_deg in (90, 270):
            return self.height, self.width
        return self.width, self.height


# The catalogue cycled over generated videos: landscape and portrait, 360p to 1080p,
# 24/25/30/29.97 fps and one variable-rate file, H.264+AAC in mp4, VP9+Opus in webm,
# mkv, and one phone-style file with rotation metadata.
FORMATS: tuple[VideoFormat, ...] = (
    VideoFormat("mp4-720p25", "mp4", "libx264", "aac", 1280, 720, Fraction(25)),
    VideoFormat("webm-360p30", "webm", "libvpx-vp9", "libopus", 640, 360, Fraction(30)),
    VideoFormat("mp4-portrait-2997", "mp4", "libx264", "aac", 720, 1280, Fraction(30000, 1001), 44100),
    VideoFormat("mp4-480p-vfr", "mp4", "libx264", "aac", 854, 480, Fraction(25), variable_frame_rate=True),
    VideoFormat("mp4-rotated-540p30", "mp4", "libx264", "aac", 540, 960, Fraction(30), display_rotation_deg=90),
    VideoFormat("mkv-1080p24", "mkv", "libx264", "aac", 1920, 1080, Fraction(24), 44100),
    VideoFormat("webm-720p25", "webm", "libvpx-vp9", "libopus", 1280, 720, Fraction(25), audio_channels=1),
    VideoFormat("mp4-540p25", "mp4", "libx264", "aac", 960, 540, Fraction(25), 16000, 1),
)


def frame_times_s(fmt: VideoFormat, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Presentation time of every frame. Variable timing mixes 1/30, 1/25 and 1/15 s steps."""
    if not fmt.variable_frame_rate:
        count = int(round(duration_s * fmt.fps))
        return np.arange(count) / float(fmt.fps)
    steps_s = rng.choice([1 / 30, 1 / 25, 1 / 15], size=int(duration_s * 30) + 2, p=[0.45, 0.35, 0.2])
    times = np.concatenate([[0.0], np.cumsum(steps_s)])
    times = np.round(times * 1000) / 1000  # the file's millisecond time base
    return times[times < duration_s]


class VideoWriter:
    """Writes displayed-orientation RGB frames and one audio track to ``path``.

    Use as a context manager; frames go in with their presentation time.
    """

    def __init__(self, path: Path, fmt: VideoFormat):
        import av

        self.fmt = fmt
        self._container = av.open(str(path), mode="w", format="matroska" if fmt.container == "mkv" else fmt.container)
        stored_w, stored_h = fmt.stored_size
        if fmt.variable_frame_rate:
            self._video = self._container.add_stream(fmt.video_codec, rate=fmt.fps)
            self._video.codec_context.time_base = Fraction(1, 1000)
        else:
            self._video = self._container.add_stream(fmt.video_codec, rate=fmt.fps)
            self._video.codec_context.time_base = 1 / fmt.fps
        self._video.width, self._video.height = stored_w, stored_h
        self._video.pix_fmt = "yuv420p"
        # One encoder thread: output bytes then depend only on the input (determinism).
        self._video.thread_count = 1
        if fmt.video_codec == "libx264":
            self._video.options = {"preset": "superfast", "crf": "20"}  # ~1.5 Mbit/s at 720p, like uploads
        elif fmt.video_codec == "libvpx-vp9":
            self._video.options = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "0"}
        if fmt.display_rotation_deg:
            self._video.set_display_rotation(fmt.display_rotation_deg)
        self._audio = self._container.add_stream(fmt.audio_codec, rate=fmt.audio_rate_hz)
        self._audio.layout = "stereo" if fmt.audio_channels == 2 else "mono"
        self._frame_index = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def write_frame(self, rgb: np.ndarray, time_s: float) -> None:
        import av

        stored = np.ascontiguousarray(_to_stored(rgb, self.fmt.display_rotation_deg))
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        if self.fmt.variable_frame_rate:
            frame.pts = int(round(time_s * 1000))
            frame.time_base = Fraction(1, 1000)
        else:
            frame.pts = self._frame_index
            frame.time_base = 1 / self.fmt.fps
        self._frame_index += 1
        for packet in self._video.encode(frame):
            self._container.mux(packet)

    def write_audio(self, samples: np.ndarray) -> None:
        """The whole soundtrack at once: float32 mono in [-1, 1] at the format's audio rate."""
        planes = np.repeat(np.asarray(samples, dtype=np.float32)[None], self.fmt.audio_channels, axis=0)
        encode_audio(self._container, self._audio, planes, self.fmt.audio_rate_hz, flush=False)  # close() drains

    def close(self) -> None:
        for stream in (self._video, self._audio):
            for packet in stream.encode(None):
                self._container.mux(packet)
        self._container.close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()


def _to_stored(rgb: np.ndarray, display_rotation_deg: int) -> np.ndarray:
    """Turn a displayed frame into the stored orientation (inverse of the display rotation).

    FFmpeg's display matrix rotates counterclockwise by the given angle to display;
    so the stored frame is the displayed one turned clockwise by that angle.
    """
    return np.rot90(rgb, k=-(display_rotation_deg // 90)) if display_rotation_deg else rgb
