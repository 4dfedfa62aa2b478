import shutil
import subprocess

import numpy as np
import pytest

from labeling_media import write_video, portrait_frames
from emoforge.labeling.audio import (
    AudioError,
    envelope_per_frame,
    load_audio_16k_mono,
    log_mel,
    speech_per_frame,
    speech_segments_s,
    wav2vec2_hidden_states,
)


def _tone(seconds, rate, hz=1000.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_any_rate_becomes_16k_mono(tmp_path):
    path = tmp_path / "tone48k.mp4"
    write_video(path, portrait_frames(5, size=(64, 48)), fps=5, audio=_tone(1.0, 48000), audio_rate=48000)
    samples = load_audio_16k_mono(path)
    assert samples.dtype == np.float32
    assert abs(len(samples) - 16000) < 1600  # AAC priming/padding
    spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 1000) < 5


def test_no_audio_is_an_audio_error(tmp_path):
    path = tmp_path / "mute.mp4"
    write_video(path, portrait_frames(3, size=(64, 48)), fps=5)
    with pytest.raises(AudioError, match="no audio"):
        load_audio_16k_mono(path)
    with pytest.raises(AudioError, match="cannot open"):
        load_audio_16k_mono(tmp_path / "missing.wav")


def test_log_mel_shape_and_band():
    mel = log_mel(_tone(1.0, 16000, hz=1000.0))
    assert mel.shape == (101, 80) and mel.dtype == np.float32
    peak = int(np.argmax(mel[50]))
    # HTK mel of 1000 Hz = 1000 mel; 80 bands over 0..2840 mel -> band ~27
    assert 25 <= peak <= 29
    assert mel[50, 75] < mel[50, peak] - 10


def test_speech_per_frame_and_envelope():
    speech = speech_per_frame([(0.1, 0.3)], n_frames=10, fps=25)
    assert speech.tolist() == [False, False, True, True, True, True, True, False, False, False]
    samples = np.concatenate([np.zeros(640), np.ones(640) * 0.5]).astype(np.float32)
    np.testing.assert_allclose(envelope_per_frame(samples, 3, 25), [0.0, 0.5, 0.0])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_silero_finds_speech_and_not_silence(tmp_path):
    import soundfile

    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "the quick brown fox jumps over the lazy dog"], check=True)
    speech, rate = soundfile.read(wav, dtype="float32")
    # resample to 16 kHz by linear interpolation (espeak-ng writes 22.05 kHz)
    t16 = np.arange(int(len(speech) * 16000 / rate)) / 16000
    speech16 = np.interp(t16, np.arange(len(speech)) / rate, speech).astype(np.float32)
    silence = np.zeros(16000, np.float32)
    samples = np.concatenate([silence, speech16, silence])
    segments = speech_segments_s(samples)
    assert segments, "no speech found in espeak-ng speech"
    start, end = segments[0][0], segments[-1][1]
    speech_s = 1.0 + len(speech16) / 16000
    assert abs(start - 1.0) < 0.3 and abs(end - speech_s) < 0.4
    assert speech_segments_s(np.zeros(32000, np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    assert speech_segments_s(noise) == []


def test_wav2vec2_all_layers_aligned_to_frames(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    transformers.Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    samples = _tone(2.0, 16000, hz=300.0)
    hidden = wav2vec2_hidden_states(samples, tmp_path / "w2v", n_frames=50, fps=25)
    assert hidden.shape == (50, 3, 16) and hidden.dtype == np.float16
    assert np.isfinite(hidden.astype(np.float32)).all()
    from emoforge.errors import UserError

    with pytest.raises(UserError):
        wav2vec2_hidden_states(samples, tmp_path, n_frames=50, fps=25)
