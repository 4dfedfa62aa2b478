"""Tiny media files for the labeling tests, written with PyAV (H.264 + AAC)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def write_video(path, frames_rgb, fps=25, audio=None, audio_rate=16000, audio_layout="mono"):
    """Write ``frames_rgb`` (F, H, W, 3) uint8 and optional mono float audio to an mp4."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = frames_rgb.shape[2], frames_rgb.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=audio_rate, layout=audio_layout)
        for i, rgb in enumerate(frames_rgb):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio_stream is not None:
            samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                part = np.ascontiguousarray(samples[:, start : start + chunk])
                frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=audio_layout)
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode(None))


def write_audio_only(path, audio, rate=16000):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def portrait_frames(n_frames=25, size=(320, 240), roll_deg_per_frame=0.0):
    """The astronaut's face, centred, turning in the image plane by a known roll rate."""
    import cv2
    import skimage.data

    width, height = size
    face = skimage.data.astronaut()[0:300, 100:350]  # head and shoulders
    scale = height / face.shape[0]
    face = cv2.resize(face, (int(face.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 90, np.uint8)
    x0 = (width - face.shape[1]) // 2
    canvas[:, x0 : x0 + face.shape[1]] = face
    frames = []
    for i in range(n_frames):
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), -roll_deg_per_frame * i, 1.0)
        frames.append(cv2.warpAffine(canvas, turn, (width, height), borderValue=(90, 90, 90)))
    return np.stack(frames)


def tone_bursts(seconds, rate=16000, on_s=((0.3, 0.9),), seed=0):
    """Noise-modulated harmonic bursts (speech-like energy) inside ``on_s`` spans, silence elsewhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(t)
    for start, end in on_s:
        inside = (t >= start) & (t < end)
        f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t[inside])
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        signal[inside] = 0.3 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t[inside]) ** 2)
    return (signal + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


