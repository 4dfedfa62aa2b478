"""Speech whose phoneme timings are known, for the generated ground-truth footage.

DESIGN.md §5 drives the rendered jaw and lips from the speech's own phoneme timings, so
the audio and the mouth agree by construction and speech-activity labels can be scored.
espeak-ng's C library (DESIGN.md §6) reports each phoneme's position in the audio it
produces (``espeakEVENT_PHONEME``, ``audio_position`` in milliseconds); we call it through
ctypes rather than its command line because only the library hands out those events.

Why every utterance is spoken in a forked child: espeak-ng keeps state between
utterances (the glottal-pulse phase, the echo buffer, settings the previous voice left
behind: the same English sentence spoken after a German one has a 53 ms longer comma
pause), and its fricative noise comes from libc's ``rand()``. Spoken twice in one
process, the same text gives different samples. So the library is initialised once per
process and never speaks in that process; each ``synthesize`` forks a child that starts
from that pristine state, seeds ``rand()``, speaks, sends back samples and events
through a pipe and exits. The same text, voice, rate and pitch therefore give identical
samples in any process, in any order. A fork costs a few milliseconds (more in a process
with a very large heap); the synthesis itself runs at several hundred times real time.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pickle
import signal
import threading
from dataclasses import dataclass

import numpy as np

from emoforge.errors import UserError

LIBRARY_NAME = "libespeak-ng.so.1"
DEBIAN_PACKAGES = "libespeak-ng1 espeak-ng-data"

# speak_lib.h (API revision 12) values used here.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data folder is missing
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_EE_OK = 0
RATE_MIN_WPM = 80  # espeakRATE_MINIMUM
RATE_MAX_WPM = 450  # espeakRATE_MAXIMUM

# A forked child that has not answered in this long is stuck inside the library.
_CHILD_TIMEOUT_S = 120
_RAND_SEED = 0


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),  # WORD and SENTENCE events
        ("name", ctypes.c_char_p),  # MARK and PLAY events
        ("string", ctypes.c_char * 8),  # PHONEME events: the mnemonic, NUL-terminated unless 8 bytes long
    ]


class _Event(ctypes.Structure):
    # x86-64 layout: 6 ints (0-23), user_data pointer at 24, the 8-byte union at 32: 40 bytes.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of this utterance's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # (priority byte, language tag, NUL)..., then a final NUL
        ("identifier", ctypes.c_char_p),  # file under espeak-ng-data/voices, e.g. b"gmw/en-US"
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of an utterance, timed against that utterance's own audio."""

    start_s: float
    end_s: float
    symbol: str  # espeak's phoneme mnemonic ("aI", "@", "_:" for a pause)
    openness: float  # target jaw opening in [0, 1] while this phoneme is spoken

    @property
    def is_pause(self) -> bool:
        return is_pause(self.symbol)


@dataclass(frozen=True)
class Speech:
    """An utterance and its truth: which phoneme sounds when, in which voice."""

    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    phonemes: tuple[Phoneme, ...]
    text: str
    voice: str  # the name given to synthesize(), variant included ("en-us+f3")
    language: str  # espeak's language tag for that voice ("en-gb" for voice "en", "fr-fr" for "fr")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def segments(self, min_gap_s: float = 0.25) -> list[tuple[float, float]]:
        """Intervals (seconds) in which someone is speaking, for speech-activity truth.

        Pauses are not speech; gaps shorter than ``min_gap_s`` (a comma, a breath) are
        bridged because activity labels are scored at that granularity, not per word.
        """
        intervals: list[list[float]] = []
        for phoneme in self.phonemes:
            if phoneme.is_pause:
                continue
            if intervals and phoneme.start_s - intervals[-1][1] < min_gap_s:
                intervals[-1][1] = max(intervals[-1][1], phoneme.end_s)
            else:
                intervals.append([phoneme.start_s, phoneme.end_s])
        return [(start_s, end_s) for start_s, end_s in intervals]


def synthesize(
    text: str, voice: str = "en", rate_wpm: int = 160, pitch: int = 50, sample_rate: int = 16000
) -> Speech:
    """Speak ``text`` in an espeak-ng voice; deterministic for the same arguments.

    ``voice`` is a voice file name (``available_voices()``), optionally with a variant
    (``"de+f2"``, ``"en-us+m3"``); ``pitch`` is espeak's 0-100 base pitch (50 normal).
    Audio is resampled from espeak's native rate (22050 Hz) with a polyphase filter when
    another ``sample_rate`` is asked for; phoneme times are in seconds and do not change.
    """
    if not text.strip():
        raise ValueError("synthesize() needs some text to speak")
    if not RATE_MIN_WPM <= rate_wpm <= RATE_MAX_WPM:
        raise ValueError(f"rate_wpm must be in [{RATE_MIN_WPM}, {RATE_MAX_WPM}] (espeak's range), got {rate_wpm}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in [0, 100], got {pitch}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")

    engine = _engine()
    pcm, events, language = _in_pristine_child(_speak, text, voice, int(rate_wpm), int(pitch))
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    duration_s = len(samples) / engine.sample_rate
    phonemes = _phonemes_from_events(events, duration_s)
    if sample_rate != engine.sample_rate:
        samples = _resample(samples, engine.sample_rate, sample_rate)
    return Speech(
        samples=samples,
        sample_rate=sample_rate,
        phonemes=phonemes,
        text=text,
        voice=voice,
        language=language,
    )


def jaw_opening(
    phonemes, fps: float, n_frames: int, offset_s: float = 0.0, smoothing_s: float = 0.015
) -> np.ndarray:
    """Per-frame jaw opening in [0, 1] for a video at ``fps`` (frame k at k/fps s).

    The speech starts at ``offset_s`` in the video. Each phoneme's target opening is held
    over its interval and smoothed with a gaussian of standard deviation ``smoothing_s``
    (truncated at 3 sigma): the jaw moves towards the next sound before it starts
    (coarticulation) instead of jumping, and is exactly 0 more than 3 sigma away from any
    sound, so silence before, between and after utterances renders a closed mouth.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    opening = np.zeros(max(int(n_frames), 0), dtype=np.float32)
    phonemes = tuple(phonemes)
    if not phonemes or opening.size == 0:
        return opening
    step_s = 0.001
    radius = max(int(round(3 * smoothing_s / step_s)), 0)
    end_s = max(p.end_s for p in phonemes)
    n_steps = int(np.ceil(end_s / step_s)) + 1
    target = np.zeros(n_steps + 2 * radius, dtype=np.float64)  # padded by the kernel radius on both sides
    for phoneme in phonemes:
        first = radius + int(round(phoneme.start_s / step_s))
        last = radius + int(round(phoneme.end_s / step_s))
        target[first:last] = phoneme.openness
    if radius > 0:
        offsets = np.arange(-radius, radius + 1) * step_s
        kernel = np.exp(-0.5 * (offsets / smoothing_s) ** 2)
        target = np.convolve(target, kernel / kernel.sum(), mode="same")
    grid_s = (np.arange(target.size) - radius) * step_s
    frame_s = np.arange(opening.size) / fps - offset_s
    opening[:] = np.interp(frame_s, grid_s, target, left=0.0, right=0.0)
    return np.clip(opening, 0.0, 1.0)


def available_voices() -> list[str]:
    """Voice names ``synthesize`` accepts (espeak-ng voice files, mbrola voices left out)."""
    return list(_voice_names())


def is_pause(symbol: str) -> bool:
    """espeak writes pauses as ``_`` mnemonics (``_``, ``_:``, ``_!``)."""
    return symbol.startswith("_")


# Jaw targets by the mnemonic's first character. espeak's mnemonics are ASCII in the
# Kirshenbaum tradition: "a" open front, "A" open back, "V" open-mid back, "0"/"O" open
# back rounded, "E"/"e"/"@"/"3"/"o"/"2"/"9"/"W" mid, "i"/"I"/"u"/"U"/"y"/"Y" close; a
# diphthong ("aI", "oU") is classed by where it starts, which is where the jaw is widest.
_OPEN_VOWEL_OPENNESS = {"a": 0.9, "A": 0.9, "&": 0.8, "V": 0.75, "0": 0.75, "O": 0.7}
_MID_VOWEL_OPENNESS = {"E": 0.6, "3": 0.5, "@": 0.45, "e": 0.5, "o": 0.5, "2": 0.45, "9": 0.55, "W": 0.5}
_CLOSE_VOWEL_OPENNESS = {"i": 0.3, "I": 0.35, "u": 0.3, "U": 0.35, "y": 0.3, "Y": 0.35}
_BILABIALS = {"p", "b", "m", "B"}  # "B" is the bilabial fricative (Spanish "haba")
_LABIODENTALS = {"f", "v"}  # lower lip against the teeth: nearly closed
_OPEN_CONSONANTS = {"h", "r", "R", "l", "j", "w", "?"}  # approximants and glottals leave the jaw where the vowel put it


def openness_of(symbol: str) -> float:
    """Target jaw opening in [0, 1] for an espeak phoneme mnemonic."""
    if not symbol or is_pause(symbol):
        return 0.0
    first = symbol[0]
    for table in (_OPEN_VOWEL_OPENNESS, _MID_VOWEL_OPENNESS, _CLOSE_VOWEL_OPENNESS):
        if first in table:
            return table[first]
    if first in _BILABIALS:
        return 0.0
    if first in _LABIODENTALS:
        return 0.1
    if first in _OPEN_CONSONANTS:
        return 0.3
    return 0.2


def _phonemes_from_events(events: list[tuple[int, str]], duration_s: float) -> tuple[Phoneme, ...]:
    """A phoneme lasts from its event to the next phoneme's event (or the end of the audio)."""
    starts_s = [min(max(position_ms / 1000.0, 0.0), duration_s) for position_ms, _ in events]
    phonemes = []
    for index, (_, symbol) in enumerate(events):
        start_s = starts_s[index]
        end_s = starts_s[index + 1] if index + 1 < len(events) else duration_s
        if end_s <= start_s:
            continue  # zero-length markers (a clause-boundary "_") carry no time
        phonemes.append(Phoneme(start_s=start_s, end_s=end_s, symbol=symbol, openness=openness_of(symbol)))
    return tuple(phonemes)


def _resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    divisor = gcd(int(from_rate), int(to_rate))
    resampled = resample_poly(samples, to_rate // divisor, from_rate // divisor)
    # The anti-aliasing filter can overshoot full-scale peaks slightly.
    return np.clip(resampled, -1.0, 1.0).astype(np.float32)


class _Engine:
    """espeak-ng initialised in this process; it never speaks here, only in forked children."""

    def __init__(self) -> None:
        try:
            library = ctypes.CDLL(LIBRARY_NAME)
        except OSError as exc:
            raise UserError(
                f"espeak-ng's C library {LIBRARY_NAME} is missing ({exc}); install the Debian packages: "
                f"apt-get install {DEBIAN_PACKAGES}"
            ) from None
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetSynthCallback.restype = None
        library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        library.espeak_SetVoiceByName.restype = ctypes.c_int
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.restype = ctypes.c_int
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_Synth.restype = ctypes.c_int
        library.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        library.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        library.espeak_GetCurrentVoice.argtypes = []
        library.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        library.espeak_ListVoices.argtypes = [ctypes.c_void_p]

        sample_rate = library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if sample_rate <= 0:
            raise UserError(
                f"espeak-ng could not start (no espeak-ng-data folder?); install the Debian packages: "
                f"apt-get install {DEBIAN_PACKAGES}"
            )
        self.library = library
        self.libc = ctypes.CDLL(None)  # rand()/srand() as the library sees them
        self.sample_rate = sample_rate
        self.pid = os.getpid()
        self.pcm_chunks: list[bytes] = []
        self.events: list[tuple[int, str]] = []
        # Kept on the instance: ctypes frees the C trampoline when the Python object dies.
        self._callback = _SynthCallback(self._collect)
        library.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples: int, events) -> int:
        if wav and n_samples > 0:
            self.pcm_chunks.append(ctypes.string_at(wav, n_samples * 2))
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                symbol = event.id.string.decode("utf-8", errors="replace")
                self.events.append((event.audio_position, symbol))
            index += 1
        return 0  # 0: go on synthesising


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()
_FORK_LOCK = threading.Lock()


def _engine() -> _Engine:
    """This process's engine, created on first use (each pool worker gets its own)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None or _ENGINE.pid != os.getpid():
            _ENGINE = _Engine()
        return _ENGINE


class _UnknownVoice(Exception):
    pass


def _speak(engine: _Engine, text: str, voice: str, rate_wpm: int, pitch: int):
    """Runs in the forked child: the library's state here is exactly as initialised."""
    library = engine.library
    if library.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
        raise _UnknownVoice(voice)
    current = library.espeak_GetCurrentVoice().contents
    _, plus, variant = voice.partition("+")
    # An unknown variant is silently dropped by espeak; the loaded identifier tells.
    if plus and not current.identifier.decode("utf-8").endswith("+" + variant):
        raise _UnknownVoice(voice)
    language = _first_language(current.languages)
    library.espeak_SetParameter(_PARAMETER_RATE, rate_wpm, 0)
    library.espeak_SetParameter(_PARAMETER_PITCH, pitch, 0)
    engine.pcm_chunks.clear()
    engine.events.clear()
    engine.libc.srand(_RAND_SEED)
    encoded = text.encode("utf-8") + b"\0"
    status = library.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != _EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return b"".join(engine.pcm_chunks), list(engine.events), language


def _list_voice_names(engine: _Engine) -> list[str]:
    voices = engine.library.espeak_ListVoices(None)
    names = set()
    index = 0
    while voices[index]:
        identifier = voices[index].contents.identifier.decode("utf-8")
        if not identifier.startswith("mb/"):  # mbrola voices need the separate mbrola program
            names.add(identifier.rsplit("/", 1)[-1].lower())
        index += 1
    return sorted(names)


@functools.cache
def _voice_names() -> tuple[str, ...]:
    # Listed in a child too: the listing loads voice files, and the parent must stay pristine.
    return tuple(_in_pristine_child(_list_voice_names))


def _first_language(languages: bytes | None) -> str:
    """The first tag of espeak's (priority byte, tag, NUL)... language list."""
    if not languages:
        return ""
    return languages[1:].split(b"\0", 1)[0].decode("utf-8")


def _in_pristine_child(job, *args):
    """Run ``job(engine, *args)`` in a child forked from this process and return its result."""
    engine = _engine()
    # Under the lock, so that a child forked for another thread does not inherit this
    # pipe's write end and hold back our end-of-file until it exits.
    with _FORK_LOCK:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid != 0:
            os.close(write_fd)
    if pid == 0:  # child: never returns into the caller's code
        exit_status = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(_CHILD_TIMEOUT_S)
            try:
                payload = pickle.dumps(("ok", job(engine, *args)))
            except _UnknownVoice as exc:
                payload = pickle.dumps(("unknown_voice", str(exc)))
            except BaseException as exc:  # reported to the parent, which raises it
                payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view) :]
        except BaseException:
            exit_status = 1
        finally:
            os._exit(exit_status)

    received = bytearray()
    try:
        while chunk := os.read(read_fd, 1 << 20):
            received += chunk
    finally:
        os.close(read_fd)
        _, wait_status = os.waitpid(pid, 0)
    if not received:
        raise RuntimeError(f"espeak-ng child process died without an answer (wait status {wait_status})")
    kind, value = pickle.loads(bytes(received))
    if kind == "unknown_voice":
        raise UserError(f"espeak-ng has no voice {value!r}; available: {', '.join(available_voices())}")
    if kind == "error":
        raise RuntimeError(f"espeak-ng synthesis failed: {value}")
    return value
