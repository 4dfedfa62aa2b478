"""espeak-ng speech with phoneme timings, and the non-speech sounds, for generated footage."""

from __future__ import annotations

import ctypes
import multiprocessing

import numpy as np
import pytest

from emoforge.curation.footage import sounds, speech, texts
from emoforge.curation.footage.speech import Speech, jaw_opening, synthesize
from emoforge.errors import UserError

SAMPLE_RATE = 16000
# Commas give clause pauses of ~175 ms, long enough to measure energy inside them.
PAUSED_TEXT = "Yes, I am here. Open the big map, and wait."


@pytest.fixture(scope="module")
def paused() -> Speech:
    return synthesize(PAUSED_TEXT, "en", sample_rate=SAMPLE_RATE)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


def _interior(speech_: Speech, start_s: float, end_s: float, margin_s: float = 0.01) -> np.ndarray:
    first = int(round((start_s + margin_s) * speech_.sample_rate))
    last = int(round((end_s - margin_s) * speech_.sample_rate))
    return speech_.samples[first:max(first, last)]


def test_event_struct_matches_the_x86_64_c_layout():
    # six 4-byte ints, the user_data pointer at 24, then the pointer-aligned union
    assert ctypes.sizeof(speech._Event) == 40
    assert speech._Event.audio_position.offset == 16
    assert speech._Event.user_data.offset == 24
    assert speech._Event.id.offset == 32
    assert ctypes.sizeof(speech._EventId) == 8


def test_speech_is_float_mono_in_range(paused):
    assert paused.samples.dtype == np.float32 and paused.samples.ndim == 1
    assert np.abs(paused.samples).max() <= 1.0
    assert _rms(paused.samples) > 0.02
    assert paused.sample_rate == SAMPLE_RATE
    assert paused.duration_s == pytest.approx(len(paused.samples) / SAMPLE_RATE)
    assert paused.text == PAUSED_TEXT and paused.voice == "en" and paused.language == "en-gb"


def test_phonemes_tile_the_audio_in_order(paused):
    phonemes = paused.phonemes
    assert len(phonemes) > 20
    for before, after in zip(phonemes, phonemes[1:]):
        assert before.start_s < before.end_s == pytest.approx(after.start_s)
    assert phonemes[-1].end_s == pytest.approx(paused.duration_s, abs=1e-3)
    assert {p.symbol for p in phonemes} >= {"_:", "m", "p", "b"}
    assert all(0.0 <= p.openness <= 1.0 for p in phonemes)


def test_phoneme_times_line_up_with_the_audio(paused):
    """Pauses are silent and vowels loud at the times the events give, to a few ms."""
    pauses = [p for p in paused.phonemes if p.is_pause and p.end_s - p.start_s > 0.05]
    vowels = [p for p in paused.phonemes if p.openness >= 0.45 and p.end_s - p.start_s > 0.04]
    assert len(pauses) >= 3 and len(vowels) >= 8
    pause_rms = [_rms(_interior(paused, p.start_s, p.end_s)) for p in pauses]
    vowel_rms = [_rms(_interior(paused, p.start_s, p.end_s)) for p in vowels]
    assert max(pause_rms) < 1e-3
    assert min(vowel_rms) > 0.02 and np.median(vowel_rms) > 0.05

    # Where a pause ends, the sound starts within a few ms of the next phoneme's event.
    envelope = np.sqrt(np.convolve(paused.samples.astype(np.float64) ** 2, np.ones(32) / 32, mode="same"))
    threshold = 0.05 * envelope.max()
    for pause, following in zip(paused.phonemes, paused.phonemes[1:]):
        if pause in pauses and not following.is_pause:
            search_from = int((pause.start_s + 0.01) * SAMPLE_RATE)
            onset_s = (search_from + np.argmax(envelope[search_from:] > threshold)) / SAMPLE_RATE
            assert abs(onset_s - following.start_s) < 0.015, (following.symbol, onset_s, following.start_s)


def test_same_text_and_voice_give_identical_samples_whatever_was_spoken_before():
    first = synthesize("Please put the blue folder away.", "en")
    synthesize("Der Zug hat leider Verspätung.", "de+f2")  # espeak keeps state between utterances
    again = synthesize("Please put the blue folder away.", "en")
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.phonemes == again.phonemes


def test_workers_of_a_forked_pool_speak_the_same_samples():
    text = "We missed the early train."
    here = synthesize(text, "en-us")  # the parent's engine exists before the fork
    with multiprocessing.get_context("fork").Pool(2) as pool:
        there = pool.starmap(synthesize, [(text, "en-us"), (text, "en-us")])
    for speech_ in there:
        np.testing.assert_array_equal(speech_.samples, here.samples)


def test_rate_changes_duration():
    text = "My brother fixes old bicycles in his garage."
    slow = synthesize(text, "en", rate_wpm=100)
    fast = synthesize(text, "en", rate_wpm=250)
    assert slow.duration_s > 1.8 * fast.duration_s
    assert slow.segments()[-1][1] > 1.8 * fast.segments()[-1][1]


def test_pitch_changes_the_voice_not_the_timing():
    low = synthesize("Hello there.", "en", pitch=20)
    high = synthesize("Hello there.", "en", pitch=80)
    assert [p.symbol for p in low.phonemes] == [p.symbol for p in high.phonemes]
    assert not np.array_equal(low.samples, high.samples)


def test_resampling_keeps_duration_and_timings():
    native = synthesize("The garden looks better.", "en", sample_rate=speech._engine().sample_rate)
    resampled = synthesize("The garden looks better.", "en", sample_rate=SAMPLE_RATE)
    assert native.sample_rate == 22050 and resampled.sample_rate == SAMPLE_RATE
    assert resampled.duration_s == pytest.approx(native.duration_s, abs=1e-3)
    assert resampled.phonemes == native.phonemes
    assert resampled.samples.dtype == np.float32 and np.abs(resampled.samples).max() <= 1.0


def test_every_language_and_voice_in_texts_speaks():
    assert len(texts.SENTENCES) >= 5
    assert {"en", "de", "fr", "es", "it"} <= set(texts.SENTENCES)
    assert all(len(sentences) >= 8 for sentences in texts.SENTENCES.values())
    assert set(texts.SENTENCES) == {language for _, language in texts.VOICES}
    assert len(texts.voices_for("en")) >= 3
    assert set(dict(texts.VOICES)) <= set(speech.available_voices())
    for voice, language in texts.VOICES:
        sentence = texts.SENTENCES[language][len(voice) % len(texts.SENTENCES[language])]
        spoken = synthesize(sentence, voice)
        assert spoken.language.split("-")[0] == language, voice
        assert spoken.duration_s > 1.0 and _rms(spoken.samples) > 0.02, voice
        assert len(spoken.segments()) >= 1, voice


def test_every_variant_speaks_and_changes_the_voice():
    plain = synthesize("Hello.", "en")
    for variant in texts.VARIANTS:
        varied = synthesize("Hello.", texts.speaker("en", variant))
        assert varied.voice == f"en+{variant}"
        assert not np.array_equal(varied.samples[: len(plain.samples)], plain.samples[: len(varied.samples)])


def test_unknown_voice_or_variant_is_a_user_error():
    with pytest.raises(UserError, match="no voice 'xx-nowhere'"):
        synthesize("Hello.", "xx-nowhere")
    with pytest.raises(UserError, match="en\\+nobody"):
        synthesize("Hello.", "en+nobody")  # espeak would silently speak plain "en"


def test_bad_arguments_are_bugs():
    with pytest.raises(ValueError):
        synthesize("   ")
    with pytest.raises(ValueError):
        synthesize("Hello.", rate_wpm=20)
    with pytest.raises(ValueError):
        synthesize("Hello.", pitch=101)


def test_missing_library_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(speech, "LIBRARY_NAME", "libespeak-ng-not-here.so.1")
    with pytest.raises(UserError, match="libespeak-ng1"):
        speech._Engine()


def test_segments_exclude_leading_and_trailing_silence_and_split_at_pauses(paused):
    segments = paused.segments(min_gap_s=0.05)
    assert len(segments) == 4  # four clauses, three commas/stops between them
    assert paused.segments(min_gap_s=0.25) == [(segments[0][0], segments[1][1]), (segments[2][0], segments[3][1])]
    assert len(paused.segments(min_gap_s=1.0)) == 1

    audible = np.nonzero(np.abs(paused.samples) > 1e-3)[0] / SAMPLE_RATE
    assert segments[0][0] == pytest.approx(audible[0], abs=0.01)
    assert segments[-1][1] == pytest.approx(audible[-1], abs=0.01)
    assert segments[-1][1] < paused.duration_s

    # Starting on a plosive: the closure is silent, so the segment starts at the burst's
    # event and nothing audible precedes it; the end is where the sound stops (a few ms
    # are allowed for millisecond event times and the resampling filter's ringing).
    words = synthesize("Stop it.", "en")
    ((start_s, end_s),) = words.segments()
    assert start_s > 0.0
    leading = words.samples[: int((start_s - 0.003) * words.sample_rate)]
    trailing = words.samples[int((end_s + 0.003) * words.sample_rate) :]
    assert leading.size and trailing.size
    assert np.abs(leading).max() < 1e-3 and np.abs(trailing).max() < 1e-3
    inside = words.samples[int(start_s * words.sample_rate) : int(end_s * words.sample_rate)]
    assert _rms(inside) > 0.02


def test_jaw_opening_is_closed_in_silence_and_open_on_vowels(paused):
    fps, offset_s = 25.0, 0.6
    n_frames = int((offset_s + paused.duration_s + 0.6) * fps)
    opening = jaw_opening(paused.phonemes, fps, n_frames, offset_s=offset_s)
    assert opening.shape == (n_frames,) and opening.dtype == np.float32
    assert opening.min() >= 0.0 and opening.max() <= 1.0

    frame_s = np.arange(n_frames) / fps - offset_s
    speech_start_s = paused.phonemes[0].start_s
    speech_end_s = max(p.end_s for p in paused.phonemes if not p.is_pause)
    assert np.all(opening[frame_s < speech_start_s - 0.05] == 0.0)
    assert np.all(opening[frame_s > speech_end_s + 0.05] == 0.0)
    for pause in (p for p in paused.phonemes if p.is_pause and p.end_s - p.start_s > 0.15):
        inside = (frame_s > pause.start_s + 0.05) & (frame_s < pause.end_s - 0.05)
        assert inside.any() and np.all(opening[inside] == 0.0)

    def mean_over(select) -> float:
        mask = np.zeros(n_frames, dtype=bool)
        for phoneme in filter(select, paused.phonemes):
            mask |= (frame_s >= phoneme.start_s) & (frame_s < phoneme.end_s)
        return float(opening[mask].mean())

    assert mean_over(lambda p: p.openness >= 0.45) > 0.3
    assert mean_over(lambda p: p.openness >= 0.45) > mean_over(lambda p: p.symbol in {"p", "b", "m"}) + 0.15


def test_jaw_opening_follows_the_targets_without_smoothing():
    phonemes = (
        speech.Phoneme(0.0, 0.1, "_:", 0.0),
        speech.Phoneme(0.1, 0.3, "a", speech.openness_of("a")),
        speech.Phoneme(0.3, 0.4, "m", speech.openness_of("m")),
    )
    opening = jaw_opening(phonemes, fps=100.0, n_frames=50, smoothing_s=0.0)
    assert opening[5] == 0.0 and opening[20] == pytest.approx(0.9) and opening[35] == 0.0 and opening[45] == 0.0
    shifted = jaw_opening(phonemes, fps=100.0, n_frames=50, offset_s=0.1, smoothing_s=0.0)
    assert shifted[30] == pytest.approx(0.9) and shifted[15] == 0.0


def test_openness_classes():
    assert speech.openness_of("a") >= 0.8 and speech.openness_of("aI") >= 0.8
    assert 0.4 <= speech.openness_of("E") <= 0.65
    assert 0.25 <= speech.openness_of("i:") <= 0.35 and 0.25 <= speech.openness_of("u:") <= 0.35
    assert speech.openness_of("p") == speech.openness_of("b") == speech.openness_of("m") == 0.0
    assert 0.15 <= speech.openness_of("t") <= 0.3 and 0.15 <= speech.openness_of("s") <= 0.3
    assert speech.openness_of("_:") == speech.openness_of("_") == 0.0


@pytest.mark.parametrize("make", [sounds.music, sounds.tones, sounds.room_noise])
def test_sounds_are_deterministic_float_mono_in_range(make):
    first = make(2.0, SAMPLE_RATE, np.random.default_rng(7))
    again = make(2.0, SAMPLE_RATE, np.random.default_rng(7))
    other = make(2.0, SAMPLE_RATE, np.random.default_rng(8))
    assert first.dtype == np.float32 and first.shape == (2 * SAMPLE_RATE,)
    assert np.abs(first).max() <= 1.0 and _rms(first) > 0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_room_noise_is_a_low_floor():
    floor = sounds.room_noise(2.0, SAMPLE_RATE, np.random.default_rng(0), level_dbfs=-50.0)
    assert 20 * np.log10(_rms(floor)) == pytest.approx(-50.0, abs=0.1)


def test_silero_vad_hears_speech_in_speech_only(paused):
    torch = pytest.importorskip("torch")
    silero_vad = pytest.importorskip("silero_vad")
    model = silero_vad.load_silero_vad()

    def speech_s(samples: np.ndarray) -> float:
        stamps = silero_vad.get_speech_timestamps(
            torch.from_numpy(samples), model, sampling_rate=SAMPLE_RATE, return_seconds=True
        )
        return sum(stamp["end"] - stamp["start"] for stamp in stamps)

    assert speech_s(paused.samples) > 0.6 * sum(end - start for start, end in paused.segments())
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        assert speech_s(sounds.music(3.0, SAMPLE_RATE, rng)) == 0.0
        assert speech_s(sounds.tones(3.0, SAMPLE_RATE, rng)) == 0.0
        assert speech_s(sounds.room_noise(3.0, SAMPLE_RATE, rng)) == 0.0
