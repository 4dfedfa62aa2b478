"""Non-speech audio for the generated footage's distractor scenes (DESIGN.md §5).

Speech-activity labels are scored against footage whose truth is known, so the scenes
without speech need sound that is *not* silence: music, beeps and a room's noise floor
are what a real video plays when nobody talks, and a detector that calls them speech
must lose points. Everything is synthesised from a numpy Generator (no samples are
shipped), deterministic for the generator's state, float32 mono in [-1, 1].

The music is deliberately unlike speech: sustained chords and notes on a steady tempo,
with no 3-8 Hz syllable-rate envelope and no formant glides. Silero VAD finds no speech
in it (tests/curation/footage/test_speech.py holds that).
"""

from __future__ import annotations

import numpy as np

# Semitone offsets above the key's root for the chords of a I-V-vi-IV style progression.
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (5, 3, 0, 4))  # scale degrees (0 = I)


def music(duration_s: float, sample_rate: int, rng: np.random.Generator, peak: float = 0.5) -> np.ndarray:
    """Chords, a bass line and a slow melody in a random major key and tempo.

    Chords are sustained organ-like pads (slow attack and release); the melody moves one
    note per beat with a soft attack. Both keep the envelope far from speech's rhythm.
    """
    n_samples = _n_samples(duration_s, sample_rate)
    out = np.zeros(n_samples, dtype=np.float64)
    if n_samples == 0:
        return out.astype(np.float32)
    root_hz = 110.0 * 2.0 ** (rng.integers(0, 12) / 12.0)  # A2 .. G#3
    beat_s = 60.0 / rng.uniform(70.0, 100.0)
    chord_s = 4 * beat_s
    progression = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    n_chords = int(np.ceil(duration_s / chord_s))
    melody_notes: list[tuple[float, float, float]] = []  # (start_s, length_s, frequency_hz)
    for index in range(n_chords):
        degree = progression[index % len(progression)]
        start_s = index * chord_s
        triad = [_scale_hz(root_hz, degree + step) for step in (0, 2, 4)]
        for frequency_hz in triad:
            _add_note(out, sample_rate, start_s, chord_s, frequency_hz * 2, 0.12, attack_s=0.25, release_s=0.4)
        _add_note(out, sample_rate, start_s, chord_s, triad[0] / 2, 0.2, attack_s=0.05, release_s=0.3)
        for beat in range(4):
            if rng.random() < 0.25:
                continue  # a rest now and then, so the melody breathes
            step = degree + int(rng.choice((0, 2, 4, 7, 9)))
            melody_notes.append((start_s + beat * beat_s, beat_s, _scale_hz(root_hz, step) * 4))
    for start_s, length_s, frequency_hz in melody_notes:
        _add_note(out, sample_rate, start_s, length_s, frequency_hz, 0.15, attack_s=0.06, release_s=0.25)
    return _normalise(out, peak)


def tones(duration_s: float, sample_rate: int, rng: np.random.Generator, peak: float = 0.5) -> np.ndarray:
    """Beeps (pure sines) and sine sweeps separated by short silences, like a test signal."""
    n_samples = _n_samples(duration_s, sample_rate)
    out = np.zeros(n_samples, dtype=np.float64)
    time_s = 0.0
    while time_s < duration_s:
        length_s = float(rng.uniform(0.15, 0.8))
        first = int(round(time_s * sample_rate))
        last = min(n_samples, first + int(round(length_s * sample_rate)))
        if last <= first:
            break
        t_s = np.arange(last - first) / sample_rate
        if rng.random() < 0.5:
            frequency_hz = float(rng.uniform(400.0, 2000.0))
            phase = 2 * np.pi * frequency_hz * t_s
        else:  # exponential sweep: equal time per octave, as in measurement signals
            start_hz, end_hz = (float(f) for f in rng.uniform(200.0, 4000.0, size=2))
            rate = np.log(end_hz / start_hz) / length_s
            phase = 2 * np.pi * start_hz * np.expm1(rate * t_s) / rate if abs(rate) > 1e-9 else 2 * np.pi * start_hz * t_s
        out[first:last] += np.sin(phase) * _envelope(last - first, sample_rate, attack_s=0.01, release_s=0.01)
        time_s += length_s + float(rng.uniform(0.1, 0.6))
    return _normalise(out, peak)


def room_noise(
    duration_s: float, sample_rate: int, rng: np.random.Generator, level_dbfs: float = -55.0, hum_hz: float = 50.0
) -> np.ndarray:
    """A quiet noise floor (pink noise plus faint mains hum) at ``level_dbfs`` RMS.

    Real recordings are never digitally silent; mixing this under every scene keeps a
    detector from keying on exact zeros between utterances.
    """
    n_samples = _n_samples(duration_s, sample_rate)
    if n_samples == 0:
        return np.zeros(0, dtype=np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequency_hz = np.fft.rfftfreq(n_samples, d=1.0 / sample_rate)
    spectrum /= np.sqrt(np.maximum(frequency_hz, 20.0))  # 1/f power: pink above 20 Hz
    noise = np.fft.irfft(spectrum, n=n_samples)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    t_s = np.arange(n_samples) / sample_rate
    phase = rng.uniform(0, 2 * np.pi)
    hum = 0.3 * np.sin(2 * np.pi * hum_hz * t_s + phase) + 0.15 * np.sin(2 * np.pi * 3 * hum_hz * t_s + phase)
    floor = noise + hum
    floor *= 10.0 ** (level_dbfs / 20.0) / (np.sqrt(np.mean(floor**2)) + 1e-12)
    return np.clip(floor, -1.0, 1.0).astype(np.float32)


def _n_samples(duration_s: float, sample_rate: int) -> int:
    if duration_s < 0 or sample_rate <= 0:
        raise ValueError(f"need duration_s >= 0 and sample_rate > 0, got {duration_s}, {sample_rate}")
    return int(round(duration_s * sample_rate))


def _scale_hz(root_hz: float, degree: int) -> float:
    octave, index = divmod(degree, len(_MAJOR_SCALE))
    return root_hz * 2.0 ** (octave + _MAJOR_SCALE[index] / 12.0)


def _add_note(
    out: np.ndarray,
    sample_rate: int,
    start_s: float,
    length_s: float,
    frequency_hz: float,
    amplitude: float,
    attack_s: float,
    release_s: float,
) -> None:
    """A note with a few decaying harmonics (a soft, organ-like timbre), cut at the end of ``out``."""
    first = int(round(start_s * sample_rate))
    last = min(len(out), first + int(round(length_s * sample_rate)))
    if last <= first:
        return
    t_s = np.arange(last - first) / sample_rate
    wave = sum(np.sin(2 * np.pi * frequency_hz * k * t_s) / k**1.5 for k in (1, 2, 3, 4))
    out[first:last] += amplitude * wave * _envelope(last - first, sample_rate, attack_s, release_s)


def _envelope(n_samples: int, sample_rate: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack and release (no clicks), flat in between."""
    envelope = np.ones(n_samples)
    n_attack = min(int(attack_s * sample_rate), n_samples // 2)
    n_release = min(int(release_s * sample_rate), n_samples - n_attack)
    if n_attack:
        envelope[:n_attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_attack) / n_attack)
    if n_release:
        envelope[n_samples - n_release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, n_release + 1) / n_release)
    return envelope


def _normalise(signal: np.ndarray, peak: float) -> np.ndarray:
    largest = np.max(np.abs(signal)) if signal.size else 0.0
    if largest > 0:
        signal = signal * (peak / largest)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)
