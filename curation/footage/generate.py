"""Generate footage: plan each video's scenes, render them, encode, and write the truth.

Output layout (``--out DIR``)::

    DIR/footage.json          the resolved configuration and the list of videos
    DIR/v000.mp4              a video (container per its format)
    DIR/v000.truth.json       its truth (schema: truth.schema.json, docs/footage.md)

A video is finished when its truth file exists; both files are written under a
temporary name and renamed, so an interrupted run leaves no half-written file and a
rerun renders only what is missing. Everything is a function of ``(seed, index)``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoforge.curation.footage.encode import FORMATS, VideoFormat, VideoWriter, frame_times_s
from emoforge.curation.footage.scenes import (
    DISTRACTOR_KINDS,
    SCENERY,
    Backdrop,
    FaceActor,
    Scene,
    speaking_actor_kwargs,
)
from emoforge.curation.footage.motion import STYLES, PoseTrajectory
from emoforge.files import write_json_atomic

GENERATOR_VERSION = 1
DISSOLVE_S = 0.6
# What a curator should do with each scene kind (scored by the curation benchmark).
EXPECTATION = {
    "talking": ("keep", None),
    "fast": ("keep", None),
    "extreme": ("reject", "head pose out of range"),
    "two_faces": ("either", "several faces"),
    "small_face": ("reject", "face too small"),
    "silent": ("reject", "no speech"),
    "music": ("reject", "no speech"),
    "voiceover": ("reject", "no face"),
    "no_face": ("reject", "no face"),
}


@dataclass(frozen=True)
class VideoJob:
    out_dir: Path
    index: int
    seed: int
    duration_s: float
    fmt: VideoFormat
    distractors: tuple[str, ...] = DISTRACTOR_KINDS  # () for talking heads only

    @property
    def stem(self) -> str:
        return f"v{self.index:03d}"

    @property
    def video_path(self) -> Path:
        return self.out_dir / f"{self.stem}.{self.fmt.container}"

    @property
    def truth_path(self) -> Path:
        return self.out_dir / f"{self.stem}.truth.json"


def generate_footage(out_dir, videos: int, seed: int, minutes: float, workers: int | None = None,
                     formats: tuple[str, ...] | None = None,
                     distractors: tuple[str, ...] = DISTRACTOR_KINDS) -> list[Path]:
    """Render ``videos`` videos of ``minutes`` each into ``out_dir``; returns the truth paths.

    Video ``i`` takes format ``i`` of the catalogue (``encode.FORMATS``), cycling; ``formats``
    narrows the cycle to the named ones.
    """
    from emoforge.errors import UserError

    by_name = {f.name: f for f in FORMATS}
    unknown = [name for name in formats or () if name not in by_name]
    if unknown:
        raise UserError(f"unknown format {unknown[0]!r}; choose from: {', '.join(by_name)}")
    cycle = [by_name[name] for name in formats] if formats else list(FORMATS)
    unknown = [kind for kind in distractors if kind not in DISTRACTOR_KINDS]
    if unknown:
        raise UserError(f"unknown scene kind {unknown[0]!r}; choose from: {', '.join(DISTRACTOR_KINDS)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from None
    jobs = [VideoJob(out, i, seed, minutes * 60.0, cycle[i % len(cycle)], tuple(distractors)) for i in range(videos)]
    config = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "videos": videos,
        "minutes": minutes,
        "distractors": list(distractors),
        "files": [{"video": j.video_path.name, "truth": j.truth_path.name, "format": j.fmt.name} for j in jobs],
    }
    write_json_atomic(out / "footage.json", config, separators=(",", ":"))
    todo = [j for j in jobs if not (j.truth_path.exists() and j.video_path.exists())]
    started = time.perf_counter()
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    print(f"footage: {len(jobs)} videos in {out} ({len(jobs) - len(todo)} already done, {workers} workers)", file=sys.stderr)
    if todo:
        if workers == 1:
            reports = [render_video(j) for j in todo]
        else:
            import multiprocessing

            # spawn: MediaPipe's graphs must not be forked into workers.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                reports = pool.map(render_video, todo, chunksize=1)
        elapsed = time.perf_counter() - started
        seconds = sum(r["duration_s"] for r in reports)
        for r in reports:
            print(
                f"  {r['video']}: {r['format']}, {r['duration_s']:.1f} s, {r['frames']} frames, "
                f"scenes {r['scenes']}, rendered in {r['render_s']:.1f} s",
                file=sys.stderr,
            )
        print(
            f"footage: rendered {seconds / 60:.2f} min of video in {elapsed:.1f} s "
            f"({seconds / elapsed:.2f}x real time on {workers} workers)",
            file=sys.stderr,
        )
    return [j.truth_path for j in jobs]


def render_video(job: VideoJob) -> dict:
    """Plan, render and encode one video; write its truth. Returns a small report."""
    started = time.perf_counter()
    rng = np.random.default_rng([job.seed, job.index])
    fmt = job.fmt
    scenes = plan_scenes(job.index, job.duration_s, fmt, rng, job.distractors)
    times = frame_times_s(fmt, job.duration_s, rng)
    camera = _camera(fmt)
    tracks = _TrackRecorder()
    partial_video = job.video_path.with_name(job.video_path.name + ".partial")
    with VideoWriter(partial_video, fmt) as writer:
        for frame_index, time_s in enumerate(times):
            frame = _render_frame(scenes, camera, time_s, frame_index, tracks)
            writer.write_frame(frame, time_s)
        writer.write_audio(mix_soundtrack(scenes, job.duration_s, fmt.audio_rate_hz, rng))
    truth = build_truth(job, scenes, times, camera, tracks)
    os.replace(partial_video, job.video_path)
    write_json_atomic(job.truth_path, truth, separators=(",", ":"))
    kinds = [s.kind for s in scenes]
    return {
        "video": job.video_path.name,
        "format": fmt.name,
        "duration_s": job.duration_s,
        "frames": len(times),
        "scenes": ",".join(kinds),
        "render_s": time.perf_counter() - started,
    }


def plan_scenes(index: int, duration_s: float, fmt: VideoFormat, rng: np.random.Generator,
                distractors: tuple[str, ...] = DISTRACTOR_KINDS) -> list[Scene]:
    """Alternate talking scenes with distractors until the video is full.

    Each video starts its distractor cycle at a different kind, so a handful of videos
    covers every kind; at least one transition per video is a dissolve. With no
    distractors every scene is a talking head.
    """
    from emoforge.curation.footage import texts

    scenes: list[Scene] = []
    offset = (index * 3) % len(distractors) if distractors else 0
    cycle = list(distractors[offset:]) + list(distractors[:offset])
    start_s, want_talking, distractor = 0.0, True, 0
    while duration_s - start_s > 1.5:
        kind = "talking" if want_talking or not cycle else cycle[distractor % len(cycle)]
        if not want_talking:
            distractor += 1
        want_talking = not want_talking
        scene = _make_scene(kind, start_s, duration_s - start_s, fmt, rng, texts)
        scenes.append(scene)
        start_s = scene.end_s
    if scenes and duration_s - scenes[-1].end_s > 0:
        scenes[-1].end_s = duration_s  # absorb the short remainder
        scenes[-1].backdrop.scene_duration_s = scenes[-1].duration_s
    transitions = ["cut"] + ["dissolve" if rng.random() < 0.25 else "cut" for _ in scenes[1:]]
    if len(scenes) > 1 and "dissolve" not in transitions:
        transitions[1 + int(rng.integers(len(scenes) - 1))] = "dissolve"
    for scene, transition in zip(scenes, transitions):
        scene.transition_in = transition
    return scenes


def _make_scene(kind: str, start_s: float, room_s: float, fmt: VideoFormat, rng, texts) -> Scene:
    from emoforge.curation.footage.portraits import PORTRAITS
    from emoforge.curation.footage.sounds import music, room_noise, tones
    from emoforge.curation.footage.speech import jaw_opening, synthesize

    rate = fmt.audio_rate_hz
    portraits = sorted(PORTRAITS)
    lead_s = DISSOLVE_S / 2 + rng.uniform(0.3, 0.7)
    tail_s = DISSOLVE_S / 2 + rng.uniform(0.3, 0.6)
    speech = None
    if kind in ("talking", "fast", "extreme", "two_faces", "small_face", "voiceover"):
        voice, language = texts.VOICES[int(rng.integers(len(texts.VOICES)))]
        variant = texts.VARIANTS[int(rng.integers(len(texts.VARIANTS)))] if rng.random() < 0.7 else None
        voice = texts.speaker(voice, variant)  # female and male variants: several voices per language
        sentences = texts.SENTENCES[language]
        count = 2 if room_s > 12 and rng.random() < 0.5 else 1
        text = " ".join(sentences[int(i)] for i in rng.choice(len(sentences), size=count, replace=False))
        speech = synthesize(text, voice=voice, rate_wpm=int(rng.integers(140, 190)), sample_rate=rate)
        if lead_s + speech.duration_s + tail_s > room_s:
            speech = None
            kind = "no_face" if kind == "voiceover" or room_s < 2.5 else "silent"
    if speech is not None:
        duration_s = lead_s + speech.duration_s + tail_s
    else:
        duration_s = min(room_s, rng.uniform(2.5, 4.5))
    scene = Scene(kind, start_s, start_s + duration_s, _backdrop(kind, portraits, rng, duration_s), [])
    level_dbfs = float(rng.uniform(-60, -45))  # a room's noise floor, from quiet to noticeable
    scene.sounds.append((0.0, room_noise(duration_s + DISSOLVE_S, rate, rng, level_dbfs=level_dbfs), "room"))
    if kind in ("no_face", "voiceover"):
        pass
    elif kind == "two_faces":
        left, right = rng.choice(portraits, size=2, replace=len(portraits) < 2)
        speaker = int(rng.integers(2))
        for slot, (name, x_frac) in enumerate(((left, 0.3), (right, 0.7))):
            scene.actors.append(
                FaceActor(
                    portrait=str(name),
                    trajectory=PoseTrajectory.random(STYLES["calm" if slot == speaker else "idle"], rng),
                    center_frac=(x_frac, rng.uniform(0.4, 0.5)),
                    face_width_frac=rng.uniform(0.2, 0.26),
                    blink_seed=int(rng.integers(2**31)),
                )
            )
    else:
        name = str(rng.choice(portraits))
        if kind in ("silent", "music"):
            placement = dict(
                trajectory=PoseTrajectory.random(STYLES["idle"], rng),
                center_frac=(0.5, 0.45),
                face_width_frac=rng.uniform(0.3, 0.4),
            )
        else:
            placement = speaking_actor_kwargs(kind, rng)
        scene.actors.append(FaceActor(portrait=name, blink_seed=int(rng.integers(2**31)), **placement))
    if kind == "music":
        maker = music if rng.random() < 0.6 else tones
        scene.sounds.append((0.0, 0.3 * maker(duration_s, rate, rng), "music"))
    if speech is not None:
        speaker_actor = None
        if scene.actors:
            speaker_actor = scene.actors[speaker] if kind == "two_faces" else scene.actors[0]
            grid_fps = 200.0
            count = int(np.ceil((duration_s + DISSOLVE_S) * grid_fps))
            speaker_actor.jaw_times_s = np.arange(count) / grid_fps
            speaker_actor.jaw_values = jaw_opening(speech.phonemes, grid_fps, count, offset_s=lead_s)
            speaker_actor.speech_segments_s = [(lead_s + a, lead_s + b) for a, b in speech.segments()]
        scene.sounds.append((lead_s, 0.8 * speech.samples, "speech"))
        scene.speech_meta.append(
            {
                "speaker": speaker_actor,
                "text": speech.text,
                "voice": speech.voice,
                "language": speech.language,
                "offset_s": lead_s,
                "segments_s": [(lead_s + a, lead_s + b) for a, b in speech.segments()],
                "phonemes": [(lead_s + p.start_s, lead_s + p.end_s, p.symbol) for p in speech.phonemes],
            }
        )
    return scene


def _backdrop(kind: str, portraits: list[str], rng, duration_s: float) -> Backdrop:
    if kind in ("no_face", "voiceover", "small_face") or rng.random() < 0.3:
        source = f"scenery:{SCENERY[int(rng.integers(len(SCENERY)))]}"
    else:
        source = f"portrait:{portraits[int(rng.integers(len(portraits)))]}"
    return Backdrop(source, tuple(rng.uniform(-0.8, 0.8, size=4)), float(rng.uniform(1.0, 1.3)), duration_s)


def _camera(fmt: VideoFormat):
    from emoforge.curation.footage.head import Camera

    # A normal lens: the longer side spans ~53°.
    return Camera(fmt.width, fmt.height, float(max(fmt.width, fmt.height)))


def _render_frame(scenes: list[Scene], camera, time_s: float, frame_index: int, tracks) -> np.ndarray:
    """One displayed frame; records each visible face's truth (with its opacity)."""
    import cv2

    current = _scene_at(scenes, time_s)
    frame, states = scenes[current].render(camera, time_s)
    layers = [(states, 1.0)]
    neighbour, weight = _dissolve_partner(scenes, current, time_s)
    if neighbour is not None:  # a dissolve: blend the two scenes
        other, other_states = neighbour.render(camera, time_s)
        frame = cv2.addWeighted(frame, 1.0 - weight, other, weight, 0.0)
        layers = [(states, 1.0 - weight), (other_states, weight)]
    for layer_states, opacity in layers:
        for state in layer_states:
            tracks.add(frame_index, state, opacity)
    return frame


def _scene_at(scenes: list[Scene], time_s: float) -> int:
    for i, scene in enumerate(scenes):
        if time_s < scene.end_s:
            return i
    return len(scenes) - 1


def _dissolve_partner(scenes, current: int, time_s: float):
    """During a dissolve, the other scene and its weight; else (None, 0)."""
    scene = scenes[current]
    half = DISSOLVE_S / 2
    if current + 1 < len(scenes) and scenes[current + 1].transition_in == "dissolve":
        boundary = scene.end_s
        if time_s >= boundary - half:  # fading into the next scene
            return scenes[current + 1], (time_s - (boundary - half)) / DISSOLVE_S
    if current > 0 and scene.transition_in == "dissolve":
        boundary = scene.start_s
        if time_s < boundary + half:  # still fading out of the previous one
            weight = (time_s - (boundary - half)) / DISSOLVE_S
            return scenes[current - 1], 1.0 - weight
    return None, 0.0


def mix_soundtrack(scenes: list[Scene], duration_s: float, rate_hz: int, rng) -> np.ndarray:
    """All scenes' sounds on one float32 track, each clipped to its scene (plus dissolve overlap)."""
    track = np.zeros(int(round(duration_s * rate_hz)), np.float32)
    for scene in scenes:
        end = min(len(track), int(round((scene.end_s + DISSOLVE_S / 2) * rate_hz)))
        begin = max(0, int(round((scene.start_s - DISSOLVE_S / 2) * rate_hz)))
        for offset_s, samples, _label in scene.sounds:
            at = int(round((scene.start_s + offset_s) * rate_hz))
            if _label == "room":
                at = begin
            stop = min(end, at + len(samples))
            if stop > at:
                track[at:stop] += samples[: stop - at]
    return np.clip(track, -1.0, 1.0)


class _TrackRecorder:
    """Collects per-frame face truth into one track per actor."""

    def __init__(self):
        self.tracks: dict[int, dict] = {}
        self._ids: dict[int, int] = {}

    def add(self, frame_index: int, state, opacity: float) -> None:
        key = id(state.actor)
        if key not in self._ids:
            self._ids[key] = len(self._ids)
            state.actor.track_id = self._ids[key]
            self.tracks[self._ids[key]] = {"actor": state.actor, "rows": []}
        self.tracks[self._ids[key]]["rows"].append((frame_index, state, opacity))


def build_truth(job: VideoJob, scenes: list[Scene], times: np.ndarray, camera, tracks: _TrackRecorder) -> dict:
    """The truth document (truth.schema.json)."""
    from emoforge.curation.footage.portraits import PORTRAITS
    from emoforge.labeling.rotation import matrix_to_euler, rotation_velocity_deg_per_frame

    fmt = job.fmt
    frame_of = lambda t: int(np.searchsorted(times, t - 1e-9))  # first frame at or after t
    scene_docs = []
    for i, scene in enumerate(scenes):
        expectation, reason = EXPECTATION[scene.kind]
        scene_docs.append(
            {
                "index": i,
                "kind": scene.kind,
                "start_s": round(scene.start_s, 6),
                "end_s": round(scene.end_s, 6),
                "start_frame": frame_of(scene.start_s),
                "end_frame": frame_of(scene.end_s) if i + 1 < len(scenes) else len(times),
                "transition_in": scene.transition_in,
                "track_ids": [a.track_id for a in scene.actors],
                "backdrop": scene.backdrop.source,
                "curation": {"expected": expectation, "reason": reason},
            }
        )
    cuts = []
    for doc, scene in zip(scene_docs[1:], scenes[1:]):
        cut = {"kind": doc["transition_in"], "time_s": doc["start_s"], "frame": doc["start_frame"]}
        if doc["transition_in"] == "dissolve":
            cut["start_frame"] = frame_of(scene.start_s - DISSOLVE_S / 2)
            cut["end_frame"] = frame_of(scene.start_s + DISSOLVE_S / 2)
        cuts.append(cut)
    track_docs = []
    for track_id, track in sorted(tracks.tracks.items()):
        rows = track["rows"]
        frames = np.array([r[0] for r in rows])
        rotations = np.stack([r[1].rotation for r in rows])
        euler = matrix_to_euler(rotations)
        velocity = rotation_velocity_deg_per_frame(rotations)
        steps_s = np.diff(times[frames]) if len(frames) > 1 else np.array([1 / float(fmt.fps)])
        velocity_per_s = velocity / np.concatenate([steps_s[:1], steps_s])
        scene_index = next(i for i, s in enumerate(scenes) if track["actor"] in s.actors)
        track_docs.append(
            {
                "track_id": track_id,
                "scene": scene_index,
                "portrait": track["actor"].portrait,
                "speaks": bool(track["actor"].speech_segments_s),
                "frames": frames.tolist(),
                "box_xyxy_px": np.round(np.stack([r[1].box_xyxy_px for r in rows]), 2).tolist(),
                "yaw_deg": np.round(euler[:, 0], 4).tolist(),
                "pitch_deg": np.round(euler[:, 1], 4).tolist(),
                "roll_deg": np.round(euler[:, 2], 4).tolist(),
                "translation": np.round(np.stack([r[1].translation for r in rows]), 3).tolist(),
                "velocity_deg_per_frame": np.round(velocity, 5).tolist(),
                "velocity_deg_per_s": np.round(velocity_per_s, 4).tolist(),
                "jaw_open": np.round([r[1].jaw_open for r in rows], 4).tolist(),
                "blink": np.round([r[1].blink for r in rows], 4).tolist(),
                "speaking": [bool(r[1].speaking) for r in rows],
                "opacity": np.round([r[2] for r in rows], 4).tolist(),
            }
        )
    speech_docs, segments = [], []
    for scene in scenes:
        for meta in scene.speech_meta:
            shift = scene.start_s
            speech_docs.append(
                {
                    "scene": scenes.index(scene),
                    "track_id": meta["speaker"].track_id if meta["speaker"] is not None else None,
                    "text": meta["text"],
                    "voice": meta["voice"],
                    "language": meta["language"],
                    "segments_s": [[round(a + shift, 4), round(b + shift, 4)] for a, b in meta["segments_s"]],
                    "phonemes": [[round(a + shift, 4), round(b + shift, 4), s] for a, b, s in meta["phonemes"]],
                }
            )
            segments.extend([a + shift, b + shift] for a, b in meta["segments_s"])
    used = sorted({t["portrait"] for t in track_docs})
    return {
        "schema_version": 1,
        "generator_version": GENERATOR_VERSION,
        "seed": job.seed,
        "index": job.index,
        "video": {
            "file": job.video_path.name,
            "format": fmt.name,
            "container": fmt.container,
            "video_codec": fmt.video_codec,
            "audio_codec": fmt.audio_codec,
            "width": fmt.width,
            "height": fmt.height,
            "display_rotation_deg": fmt.display_rotation_deg,
            "nominal_fps": float(fmt.fps),
            "variable_frame_rate": fmt.variable_frame_rate,
            "duration_s": job.duration_s,
            "n_frames": len(times),
            "frame_times_s": np.round(times, 6).tolist(),
            "audio_rate_hz": fmt.audio_rate_hz,
            "audio_channels": fmt.audio_channels,
        },
        "camera": {"focal_px": camera.focal_px, "cx_px": camera.width / 2, "cy_px": camera.height / 2},
        "scenes": scene_docs,
        "cuts": cuts,
        "tracks": track_docs,
        "speech": speech_docs,
        "speech_segments_s": [[round(a, 4), round(b, 4)] for a, b in sorted(segments)],
        "portraits": {name: {"licence": PORTRAITS[name].licence, "source": PORTRAITS[name].source} for name in used},
    }
