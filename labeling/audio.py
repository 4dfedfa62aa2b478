"""Audio labels: 16 kHz mono samples, speech activity, log-mel and wav2vec2 features (paper §3.2, §4.1).

- :func:`load_audio_16k_mono` decodes the first audio stream of any container PyAV
  reads and resamples it to 16 kHz mono float32 in [-1, 1].
- :func:`speech_segments_s` finds speech with silero-vad (its weights ship in the
  wheel); :func:`speech_per_frame` turns segments into one flag per video frame (a
  frame is speech when its centre time lies in a segment).
- :func:`log_mel` is the weight-free feature: 80 mel bands, 25 ms windows, 10 ms hop
  (100 frames per second), natural log of power + 1e-6.
- :func:`wav2vec2_hidden_states` runs a local ``transformers`` wav2vec2 folder and
  returns every layer's hidden states (the CNN projection's output plus each
  transformer layer: ``L + 1`` layers), linearly resampled from wav2vec2's 50 Hz to the
  video's frames: ``(F, L + 1, D)``. EMO concatenates the blocks' features per frame
  (§3.2, "Audio Layers").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoforge.errors import UserError

SAMPLE_RATE_HZ = 16000
MEL_BANDS = 80
MEL_WINDOW_SAMPLES = 400  # 25 ms
MEL_HOP_SAMPLES = 160  # 10 ms -> 100 mel frames per second


class AudioError(UserError):
    """The audio cannot be used: no audio stream, undecodable, empty."""


def load_audio_16k_mono(path) -> np.ndarray:
    """The first audio stream of ``path`` as 16 kHz mono float32, shape ``(samples,)``."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioError(f"cannot open {path}: {exc}") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as exc:
            if not chunks:
                raise AudioError(f"cannot decode the audio of {path}: {exc}") from None
            # a damaged tail: keep what decoded (the caller records the length)
    if not chunks:
        raise AudioError(f"the audio stream of {path} holds no samples")
    return np.concatenate(chunks).astype(np.float32)


def speech_segments_s(
    samples_16k: np.ndarray,
    threshold: float = 0.5,
    min_speech_ms: int = 250,
    min_silence_ms: int = 100,
    speech_pad_ms: int = 30,
) -> list[tuple[float, float]]:
    """Speech ``(start_s, end_s)`` segments found by silero-vad (ONNX model from its wheel)."""
    import torch
    from silero_vad import get_speech_timestamps

    if len(samples_16k) == 0:
        return []
    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(samples_16k, dtype=np.float32)),
        _silero_model(),
        threshold=threshold,
        sampling_rate=SAMPLE_RATE_HZ,
        min_speech_duration_ms=min_speech_ms,
        min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=speech_pad_ms,
    )
    return [(s["start"] / SAMPLE_RATE_HZ, s["end"] / SAMPLE_RATE_HZ) for s in stamps]


_SILERO = None


def _silero_model():
    global _SILERO  # one load per process (~20 ms); the model is reset per call by silero itself
    if _SILERO is None:
        from silero_vad import load_silero_vad

        _SILERO = load_silero_vad(onnx=True)
    return _SILERO


def speech_per_frame(segments_s: list[tuple[float, float]], n_frames: int, fps: float) -> np.ndarray:
    """``(F,)`` bool: frame ``f`` is speech when its centre ``(f + 0.5) / fps`` lies in a segment."""
    centres_s = (np.arange(n_frames) + 0.5) / fps
    speech = np.zeros(n_frames, dtype=bool)
    for start, end in segments_s:
        speech |= (centres_s >= start) & (centres_s < end)
    return speech


def envelope_per_frame(samples_16k: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """RMS of the samples inside each video frame's time span, ``(F,)`` float64 (0 past the audio's end)."""
    samples = np.asarray(samples_16k, dtype=np.float64)
    bounds = np.round(np.arange(n_frames + 1) * SAMPLE_RATE_HZ / fps).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(samples**2)])
    lo, hi = np.clip(bounds[:-1], 0, len(samples)), np.clip(bounds[1:], 0, len(samples))
    counts = np.maximum(hi - lo, 1)
    return np.sqrt((squares[hi] - squares[lo]) / counts)


def _mel_filter_bank(n_fft: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """HTK-scale triangular filters, ``(n_mels, n_fft // 2 + 1)``, each normalised to unit area (Slaney)."""

    def hz_to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def mel_to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (upper - lower))


def _mel_frame_starts(n_samples: int, rows: tuple[int, int] | None) -> np.ndarray:
    """First sample (may be < 0) of each log-mel frame in ``rows`` (all when None); rows past the last frame repeat it."""
    n_out = n_samples // MEL_HOP_SAMPLES + 1
    first, stop = (0, n_out) if rows is None else (int(rows[0]), int(rows[1]))
    return np.minimum(np.arange(first, stop), n_out - 1) * MEL_HOP_SAMPLES - MEL_WINDOW_SAMPLES // 2


def log_mel_samples(n_samples: int, rows: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(low, high)``: the samples of an ``n_samples`` signal that :func:`log_mel` ``rows`` read
    (a caller may decode only those and leave the rest zero: the same result)."""
    starts = _mel_frame_starts(n_samples, rows)
    return max(0, int(starts.min())), min(n_samples, int(starts.max()) + MEL_WINDOW_SAMPLES)


def log_mel(samples_16k: np.ndarray, n_mels: int = MEL_BANDS, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``(T, n_mels)`` float32 log-mel at 100 frames per second; frame ``t`` is centred on ``t * 10 ms``.

    ``rows = (first, stop)`` computes only frames ``first .. stop-1`` of that sequence,
    exactly as the whole computation gives them (zeros outside the signal; rows past the
    last frame repeat it).
    """
    samples = np.asarray(samples_16k, dtype=np.float64)
    n_fft = 512
    starts = _mel_frame_starts(len(samples), rows)  # each frame's first sample
    begin, end = int(starts.min()), int(starts.max()) + MEL_WINDOW_SAMPLES  # the samples these frames see
    low, high = max(0, begin), min(len(samples), end)
    padded = np.pad(samples[low:high], (low - begin, end - high))  # zeros where frames reach past the signal
    frames = padded[(starts - begin)[:, None] + np.arange(MEL_WINDOW_SAMPLES)[None, :]]  # (T, 400)
    power = np.abs(np.fft.rfft(frames * np.hanning(MEL_WINDOW_SAMPLES), n=n_fft, axis=1)) ** 2  # (T, 257)
    # einsum's own loop, not BLAS: a multithreaded BLAS spins in a dataloader worker whose
    # cores are busy (an 80 x 257 product took 4 ms instead of 0.2).
    mel = np.einsum("tf,mf->tm", power, _mel_filter_bank(n_fft, n_mels, SAMPLE_RATE_HZ))  # (T, n_mels)
    return np.log(mel + 1e-6).astype(np.float32)


def wav2vec2_hidden_states(samples_16k: np.ndarray, model_dir, n_frames: int, fps: float) -> np.ndarray:
    """All layers of a local wav2vec2 model, aligned to the video: ``(F, L + 1, D)`` float16."""
    import torch
    import transformers

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} is not a transformers model folder (no config.json)")
    model = transformers.Wav2Vec2Model.from_pretrained(str(model_dir))
    model.eval()
    samples = np.asarray(samples_16k, dtype=np.float32)
    normalise = True
    if (model_dir / "preprocessor_config.json").is_file():
        extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(str(model_dir))
        normalise = bool(extractor.do_normalize)
    if normalise:  # what Wav2Vec2FeatureExtractor does: zero mean, unit variance per utterance
        samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    # at least one conv receptive field (400 samples)
    samples = np.pad(samples, (0, max(0, 400 - len(samples))))
    with torch.inference_mode():
        out = model(torch.from_numpy(samples)[None], output_hidden_states=True)
    hidden = torch.stack(out.hidden_states, dim=0)[:, 0]  # (L+1, T, D)
    hidden = hidden.permute(0, 2, 1)  # (L+1, D, T)
    # wav2vec2 frame t covers about t * 20 ms; sample it at the video frames' centres.
    n_audio = hidden.shape[-1]
    duration_s = len(samples_16k) / SAMPLE_RATE_HZ
    positions = ((np.arange(n_frames) + 0.5) / fps) / max(duration_s, 1e-9) * n_audio - 0.5
    positions = np.clip(positions, 0, n_audio - 1)
    lo = np.floor(positions).astype(np.int64)
    hi = np.minimum(lo + 1, n_audio - 1)
    frac = torch.from_numpy((positions - lo).astype(np.float32))
    aligned = hidden[..., lo] * (1 - frac) + hidden[..., hi] * frac  # (L+1, D, F)
    return aligned.permute(2, 0, 1).numpy().astype(np.float16)  # (F, L+1, D)
