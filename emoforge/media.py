"""PyAV helpers shared by the parts that write media (footage, clips, synthetic test clips)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def encode_audio(container, stream, planes: np.ndarray, rate_hz: int, flush: bool = True) -> None:
    """Encode and mux a whole soundtrack; ``flush`` drains the encoder (else the caller does).

    ``planes`` is float32 ``(channels, samples)`` in [-1, 1], one plane per channel of
    ``stream``'s layout; frames carry sample-exact timestamps.
    """
    import av

    planes = np.clip(np.asarray(planes, dtype=np.float32), -1.0, 1.0)
    frame_size = stream.codec_context.frame_size or 1024
    for begin in range(0, planes.shape[1], frame_size):
        chunk = np.ascontiguousarray(planes[:, begin : begin + frame_size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate_hz
        frame.pts = begin
        frame.time_base = Fraction(1, rate_hz)
        for packet in stream.encode(frame):
            container.mux(packet)
    if flush:
        for packet in stream.encode(None):
            container.mux(packet)
