"""Streaming an mp4 (H.264 + AAC) frame by frame, with the driving audio, written atomically.

Frames arrive clip by clip from the sampler and are encoded as they come, so a long
video never sits in memory; the audio is muxed at the end. The file appears under its
name only when complete (temporary name, then rename).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

AUDIO_RATE_HZ = 16000


class Mp4Writer:
    def __init__(self, path: str | Path, fps: int, size_px: int, crf: int = 18):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial.mp4")
        self.container = av.open(str(self.partial), mode="w", format="mp4")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width = self.video.height = size_px
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"preset": "fast", "crf": str(crf)}
        self.video.codec_context.time_base = Fraction(1, fps)
        self.audio = self.container.add_stream("aac", rate=AUDIO_RATE_HZ)
        self.audio.layout = "mono"
        self.fps = fps
        self.frames_written = 0

    def write(self, frames_fhwc_uint8: np.ndarray) -> None:
        import av

        for rgb in frames_fhwc_uint8:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = Fraction(1, self.fps)
            for packet in self.video.encode(frame):
                self.container.mux(packet)
            self.frames_written += 1

    def close(self, audio_16k: np.ndarray) -> Path:
        """Flush the video, mux `audio_16k` (float32 mono), and move the file into place."""
        import av

        for packet in self.video.encode(None):
            self.container.mux(packet)
        audio = np.asarray(audio_16k, dtype=np.float32)
        frame_size = self.audio.codec_context.frame_size or 1024
        for begin in range(0, len(audio), frame_size):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, begin: begin + frame_size]),
                                               format="fltp", layout="mono")
            chunk.sample_rate = AUDIO_RATE_HZ
            chunk.pts = begin
            chunk.time_base = Fraction(1, AUDIO_RATE_HZ)
            for packet in self.audio.encode(chunk):
                self.container.mux(packet)
        for packet in self.audio.encode(None):
            self.container.mux(packet)
        self.container.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self.partial.unlink(missing_ok=True)


def to_uint8_frames(video_cfhw) -> np.ndarray:
    """(3, f, H, W) torch tensor in [-1, 1] -> (f, H, W, 3) uint8."""
    import torch

    frames = ((video_cfhw.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()
