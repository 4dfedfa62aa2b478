"""Label one video (DESIGN.md §3 step 7): the stages, composed top to bottom.

    identify -> probe -> audio (16 kHz, speech, envelope) -> frames (cuts, detection,
    mesh, tracks) -> shots and speakers (sync) -> pose -> velocity -> audio features
    -> labels

Every stage's failure on a bad input is a recorded reason, never a traceback: an
unreadable or audio-only file is *rejected* (a JSON with the reason); a video without
audio, without speech or with a damaged tail is labelled with a *warning*.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emoforge.errors import UserError
from emoforge.labeling.labels import VideoLabels, file_sha256, paths_for, read_labels, video_id_for, write_labels

LANDMARKS = 478
CROP_MESH_GIVE_UP = 10  # crop-mesh attempts on a track that found nothing before it is left alone


@dataclass(frozen=True)
class LabelConfig:
    """Every knob of the labeler; saved in each label file and beside the run."""

    min_face_score: float = 0.5
    detect_min_px: int = 640  # whole-frame detection and cuts see the frame area-downscaled by a whole factor to a long side ≥ this (0: full)
    full_range_every: int = 20  # frames; also where the short-range model finds nothing (faces.FaceDetector)
    tile_every: int = 10  # a shot's first frame and every 10th: if no face, the full-range model on tiles (0: never)
    follow_small_below: float = 0.15  # meshed faces smaller than this x the short side: looked for on a crop next frame
    max_mesh_faces: int = 2
    # While the tracking mesh holds every face of the last frame, the detector runs on every
    # detect_every-th frame of a shot; between, the mesh carries its boxes (faces.carry_detections; 1: every frame).
    detect_every: int = 3
    mesh_retry_every: int = 5  # the whole-frame mesh, after finding nothing: again at a new face or every this many frames (faces.MeshSchedule; 1: every frame)
    crop_mesh: bool = True  # mesh a detection the tracking mesh missed on an upscaled crop (faces.CropMesher)
    min_track_mesh_fraction: float = 0.5  # a track with fewer of its detections meshed is not a face: dropped
    cut_threshold: float = 30.0
    pose_method: str = "pnp"  # "pnp" or "lift" (emoforge.labeling.pose)
    focal_px: float | None = None  # default max(W, H)
    smoothing_sigma_frames: float = 3.0  # rotation_smoothed; and the velocity without flow
    # Velocity from the image motion of the face between frames (labeling/flow.py, pose.flow_steps):
    # the steps chained and smoothed with σ = flow_smoothing_sigma_frames, blending to
    # σ = flow_fast_smoothing_sigma_frames for fast turns (below). Without flow: from consecutive
    # poses, σ = smoothing_sigma_frames blending to σ = fast_smoothing_sigma_frames.
    flow_velocity: bool = True
    flow_smoothing_sigma_frames: float = 2.0
    flow_fast_smoothing_sigma_frames: float = 0.5
    # Fast turns: a σ = 3 frame Gaussian halves a 1.5 Hz head shake's speed, so above
    # fast_from_deg_per_s the velocity blends to the lightly smoothed one, fully at
    # fast_full_deg_per_s (velocity.blend_by_speed; docs/labeling.md, Results).
    fast_smoothing_sigma_frames: float = 1.0
    fast_from_deg_per_s: float = 30.0
    fast_full_deg_per_s: float = 60.0
    max_velocity_deg_per_frame: float = 30.0  # a larger jump is an identity switch, not a head turn
    vad_threshold: float = 0.5
    sync_max_offset_frames: int = 5
    store_mesh: bool = True
    wav2vec2_dir: str | None = None


class LabelModels:
    """The labeler's MediaPipe graphs that keep nothing from one image to the next (the
    detector's short- and full-range graphs, the crop mesh), built once for a worker and
    lent to each of its :func:`label_frames` calls. Building them took ~60 ms of CPU a call,
    and curation makes one call per scene span, a few seconds of video each. The tracking
    mesh is not among them: it starts afresh at every shot anyway."""

    def __init__(self, config: "LabelConfig"):
        from emoforge.labeling.faces import CropMesher, FaceDetector

        self.key = _models_key(config)
        self.detector = FaceDetector(config.min_face_score, config.full_range_every)
        self.crop_mesher = CropMesher() if config.crop_mesh else None

    def close(self) -> None:
        self.detector.close()
        if self.crop_mesher is not None:
            self.crop_mesher.close()


def _models_key(config: "LabelConfig") -> tuple:
    return config.min_face_score, config.full_range_every, config.crop_mesh


class _Timer:
    """Process CPU seconds per step (all threads), plus wall seconds."""

    def __init__(self):
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.wall_s: dict[str, float] = defaultdict(float)

    def step(self, name: str) -> "_Span":
        return _Span(self, name)


class _Span:
    """One timed step of a :class:`_Timer` (a ``with`` block)."""

    def __init__(self, timer: _Timer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc):
        self.timer.cpu_s[self.name] += time.process_time() - self.cpu
        self.timer.wall_s[self.name] += time.perf_counter() - self.wall


@contextmanager
def _opencv_threads(count: int):
    """OpenCV's thread pool at ``count`` threads inside the block, as it was after.

    The labeler runs one video per core: OpenCV's parallel loops on small images (the
    flow's crops, the cut thumbnail) cost more CPU time in hand-offs, and in workers
    spinning on after each loop, than they save (measured: 2.6 ms a 720p frame of 27 with
    OpenCV's default two threads on the 2-core VM, flow 2.6 -> 2.1 ms)."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def label_video(path, out_dir, config: LabelConfig = LabelConfig(), shot_starts: list[int] | None = None,
                overwrite: bool = False) -> VideoLabels:
    """Label ``path`` into ``out_dir``; returns the labels written (or found, when a finished
    file with the same configuration exists and ``overwrite`` is false)."""
    from emoforge.labeling import audio as audio_mod
    from emoforge.labeling.video import iter_frames, probe_video

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such video file: {path}")
    sha256 = file_sha256(path)
    video_id = video_id_for(path, sha256)
    source = {"path": str(path), "file": path.name, "sha256": sha256, "size_bytes": path.stat().st_size}
    found = None if overwrite else _finished(out_dir, video_id, config)
    if found is not None:
        return found

    def inputs(timer: _Timer, meta: dict):
        with timer.step("probe"):
            info = probe_video(path)
        samples = None  # audio first (cheap): sync needs the envelope when choosing the speaking face
        with timer.step("audio_decode"):
            if info.has_audio:
                try:
                    samples = audio_mod.load_audio_16k_mono(path)
                except audio_mod.AudioError as exc:
                    meta["warnings"].append(f"audio unusable: {exc}")
            else:
                meta["warnings"].append("no audio stream (video-only): no speech, sync or audio features")
        return iter_frames(path), info, samples

    return _label_into(out_dir, video_id, source, config, shot_starts, inputs)


def label_frames(frames, info, audio_16k: np.ndarray | None, out_dir, video_id: str, source: dict,
                 config: LabelConfig = LabelConfig(), shot_starts: list[int] | None = None,
                 models: LabelModels | None = None) -> VideoLabels:
    """Label decoded frames that do not come from a file of their own (curation reads a span
    of a source on the fly): ``frames`` yields :class:`~emoforge.labeling.video.DecodedFrame`,
    ``info`` is their :class:`~emoforge.labeling.video.VideoInfo`, ``audio_16k`` the aligned
    16 kHz mono samples (None: no audio). ``source`` describes where the frames come from; a
    finished file of ``video_id`` with the same ``source`` and configuration is returned
    instead of labelling again. ``models``: graphs built for ``config`` to use and leave open
    (:class:`LabelModels`; None: built for this call and closed after it)."""
    found = _finished(out_dir, video_id, config, source)
    if found is not None:
        return found

    def inputs(timer: _Timer, meta: dict):
        if audio_16k is None:
            meta["warnings"].append("no audio stream (video-only): no speech, sync or audio features")
        return iter(frames), info, audio_16k

    return _label_into(out_dir, video_id, source, config, shot_starts, inputs, models)


def _finished(out_dir, video_id: str, config: LabelConfig, source: dict | None = None) -> VideoLabels | None:
    """The finished labels of ``video_id`` made with ``config`` (and from ``source``, when given)."""
    existing = paths_for(out_dir, video_id)["json"]
    if not existing.is_file():
        return None
    try:
        found = read_labels(existing, arrays=False)
        if found.meta.get("config") == asdict(config) and (source is None or found.meta.get("source") == source):
            return read_labels(existing)  # whole, as if just written (a resumed run uses its arrays)
    except UserError:
        pass  # another version: relabel
    return None


def _label_into(out_dir, video_id: str, source: dict, config: LabelConfig, shot_starts, inputs,
                models: LabelModels | None = None) -> VideoLabels:
    """Label what ``inputs(timer, meta)`` opens (frames, info, samples) and write the labels."""
    meta = {
        "video_id": video_id,
        "source": source,
        "config": asdict(config),
        "status": "ok",
        "reason": None,
        "warnings": [],
    }
    try:
        with _opencv_threads(1):
            timer = _Timer()
            frames, info, samples = inputs(timer, meta)
            labels = _label(frames, info, samples, meta, config, shot_starts, timer, models)
    except UserError as exc:  # the stages' errors: a recorded reason, not a crash
        meta.update(status="rejected", reason=str(exc))
        labels = VideoLabels(meta)
    write_labels(out_dir, labels)
    return labels


def _label(frame_iter, info, samples, meta: dict, config: LabelConfig, shot_starts, timer: _Timer,
           models: LabelModels | None = None) -> VideoLabels:
    from emoforge.labeling import audio as audio_mod
    from emoforge.labeling.pose import Intrinsics

    frames = _frames_stage(frame_iter, config, shot_starts, timer, meta, models)
    if shot_starts is None:
        frames.shot_id, frames.det_track = split_shots_where_faces_change(
            frames.shot_id, frames.det_frame, frames.det_track
        )
    n = len(frames.time_s)
    if n == 0:
        raise UserError(f"{Path(info.path).name}: no decodable video frame")
    step_s = np.diff(frames.time_s)
    fps = 1.0 / float(np.median(step_s)) if n > 1 and np.median(step_s) > 0 else info.nominal_fps
    intrinsics = Intrinsics.for_frame(info.width, info.height, config.focal_px)

    speech = np.zeros(n, dtype=bool)
    envelope = np.full(n, np.nan)
    segments: list[tuple[float, float]] = []
    if samples is not None:
        with timer.step("vad"):
            segments = audio_mod.speech_segments_s(samples, threshold=config.vad_threshold)
            speech = _per_frame_by_time(segments, frames.time_s, fps)
            envelope = _envelope_by_time(samples, frames.time_s, fps)
        if not segments:
            meta["warnings"].append("no speech found in the audio (silent or music)")

    with timer.step("tracks"):
        shots = _shots_stage(frames, envelope, config)
    with timer.step("pose"):
        dominant = _dominant_arrays(frames, shots, n)
        pose, steps = _pose_stage(frames, dominant["dominant_track_id"], intrinsics, config)
    with timer.step("velocity"):
        velocity = _velocity_stage(pose, frames, config, steps)

    audio_arrays = {}
    if samples is not None:
        with timer.step("logmel"):
            audio_arrays["logmel"] = audio_mod.log_mel(samples)
        if config.wav2vec2_dir:
            with timer.step("wav2vec2"):
                audio_arrays["wav2vec2"] = audio_mod.wav2vec2_hidden_states(samples, config.wav2vec2_dir, n, fps)

    arrays = {
        "frame_time_s": frames.time_s,
        "shot_id": frames.shot_id,
        "face_count": np.bincount(frames.det_frame, minlength=n).astype(np.int16),
        "det_frame": frames.det_frame,
        "det_box_xyxy_px": frames.det_box,
        "det_face_box_xyxy_px": frames.det_face_box,
        "det_score": frames.det_score,
        "det_model": frames.det_model,
        "det_track_id": frames.det_track,
        "det_mouth_open": frames.det_mouth,
        **dominant,
        **pose,
        **velocity,
        "speech": speech,
        "audio_envelope_rms": envelope.astype(np.float32),
    }
    if not config.store_mesh:
        arrays.pop("mesh_px")
    velocity_per_s = velocity["velocity_deg_per_s"]
    meta.update(
        video={
            "width": info.width,
            "height": info.height,
            "nominal_fps": info.nominal_fps,
            "measured_fps": fps,
            "n_frames": n,
            "duration_s": float(frames.time_s[-1] + 1.0 / fps),
            "codec": info.codec,
            "container": info.container,
        },
        camera={"focal_px": intrinsics.focal_px, "cx_px": intrinsics.cx_px, "cy_px": intrinsics.cy_px},
        audio={
            "present": samples is not None,
            "sample_rate_hz": audio_mod.SAMPLE_RATE_HZ,
            "duration_s": None if samples is None else len(samples) / audio_mod.SAMPLE_RATE_HZ,
            "speech_segments_s": [[round(a, 4), round(b, 4)] for a, b in segments],
            "speech_fraction": float(speech.mean()),
            "logmel_frames_per_s": 100,
            "wav2vec2": bool(config.wav2vec2_dir) and samples is not None,
        },
        shots=shots,
        summary={
            "frames_with_face": int((arrays["face_count"] > 0).sum()),
            "frames_with_pose": int(pose["pose_valid"].sum()),
            "mean_velocity_deg_per_s": _nan_stat(np.nanmean, velocity_per_s),
            "velocity_variance_deg2_per_s2": _nan_stat(np.nanvar, velocity_per_s),
        },
        timing_cpu_s={k: round(v, 4) for k, v in timer.cpu_s.items()},
        timing_wall_s={k: round(v, 4) for k, v in timer.wall_s.items()},
    )
    return VideoLabels(meta, arrays, audio_arrays)


def _nan_stat(fn, values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(fn(values)) if np.isfinite(values).any() else None


@dataclass
class _Frames:
    time_s: np.ndarray
    shot_id: np.ndarray
    det_frame: np.ndarray
    det_box: np.ndarray
    det_score: np.ndarray
    det_model: np.ndarray
    det_track: np.ndarray
    det_mouth: np.ndarray
    det_mesh: list  # per detection: (478, 3) float32 or None
    det_flow: list | None = None  # per detection: (478, 2) float32 landmark motion from the previous frame, or None
    det_face_box: np.ndarray | None = None  # (N, 4) the face box: tight box of the mesh

    def __post_init__(self):
        if self.det_face_box is None:
            self.det_face_box = _face_boxes(self.det_box, self.det_mesh, self.det_track)


def _face_boxes(det_box: np.ndarray, meshes: list, track: np.ndarray) -> np.ndarray:
    """The face box of each detection: the tight box of its mesh's 478 points; without a mesh,
    the detector box moved by the median detector-to-mesh offsets (in box sizes) of its track
    (of all detections when the track has no mesh at all; the detector box when none has)."""
    boxes = det_box.astype(np.float64).copy()
    has_mesh = np.array([m is not None for m in meshes], dtype=bool)
    if not has_mesh.any():
        return boxes.astype(np.float32)
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    mesh_box = np.full_like(boxes, np.nan)
    for i in np.flatnonzero(has_mesh):
        points = meshes[i][:, :2]
        mesh_box[i] = [points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()]
    offset = (mesh_box - boxes) / size  # (N, 4), NaN without a mesh
    overall = np.nanmedian(offset[has_mesh], axis=0)
    out = np.where(has_mesh[:, None], mesh_box, np.nan)
    for t in np.unique(track[~has_mesh]):
        rows = np.flatnonzero((track == t) & ~has_mesh)
        own = (track == t) & has_mesh
        shift = np.nanmedian(offset[own], axis=0) if own.any() else overall
        out[rows] = boxes[rows] + shift * size[rows]
    return out.astype(np.float32)


def _frames_stage(frames, config: LabelConfig, shot_starts, timer: _Timer, meta: dict,
                  models: LabelModels | None = None) -> _Frames:
    """Decode once; per frame: cut check, detection (tiles and crops for small faces), mesh (reset
    at cuts), crop mesh, one detection per face, tracking, landmark flow from the previous frame."""
    from emoforge.labeling.faces import (FaceMesher, FaceTracker, MeshSchedule, attach_meshes, carry_detections,
                                         drop_duplicate_faces, mesh_box)
    from emoforge.labeling.flow import LandmarkFlow
    from emoforge.labeling.shots import CutDetector
    from emoforge.labeling.sync import mouth_opening
    from emoforge.labeling.video import VideoError, downscaled

    lent = models is not None
    if lent and models.key != _models_key(config):
        raise ValueError(f"label models built for {models.key}, not for this config's {_models_key(config)}")
    models = models if lent else LabelModels(config)
    detector, crop_mesher = models.detector, models.crop_mesher
    detector.restart()
    since_cut = 0  # frames since the shot started: the tiled small-face search's schedule
    follow: list[np.ndarray] = []  # face boxes of the previous frame's small meshed faces
    last_face_box: dict[int, np.ndarray] = {}  # track -> its last mesh box
    mesher = FaceMesher(config.max_mesh_faces)
    crop_tries: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # track -> [tries, meshes found]
    flow = LandmarkFlow() if config.flow_velocity else None
    previous_rgb, previous_meshes = None, {}  # the last frame, and its meshes by track
    previous_tracks: set[int] = set()  # the tracks of the last frame's detections
    held_by_mesh: list = []  # the last frame's detections when the tracking mesh held every one of them
    mesh_schedule = MeshSchedule(config.mesh_retry_every)  # the whole-frame mesh skips frames after finding nothing
    tracker = FaceTracker()
    cuts = CutDetector(config.cut_threshold)
    known_starts = set(shot_starts or ())
    times, shot_ids, rows = [], [], []
    shot = 0
    try:
        while True:
            with timer.step("decode"):
                try:
                    frame = next(frames)
                except StopIteration:
                    break
            with timer.step("downscale"):  # one small copy for the whole-frame detectors and the cut detector
                scaled = downscaled(frame.rgb, config.detect_min_px)
            with timer.step("cuts"):
                if shot_starts is not None:
                    is_cut = frame.index in known_starts and frame.index > 0
                else:
                    is_cut = cuts.is_cut(scaled[0])
            if is_cut:
                shot += 1
                tracker.cut()
                mesher.reset()
                mesh_schedule.reset()
                previous_meshes = {}
                follow = []
                held_by_mesh = []
                since_cut = 0
            detections, meshes = None, None
            if (since_cut % max(1, config.detect_every) and frame.index % max(1, config.full_range_every)
                    and not follow and held_by_mesh):  # a frame the detector may skip: the tracking mesh first
                with timer.step("mesh"):
                    meshes = mesher.process(frame.rgb, len(held_by_mesh))
                    detections = carry_detections(held_by_mesh, meshes, last_face_box, frame.rgb.shape[1::-1])
            carried = detections is not None
            if not carried:
                with timer.step("detect"):
                    search = config.tile_every > 0 and since_cut % config.tile_every == 0
                    detections = detector.detect(frame.rgb, frame.index, follow, search_tiles=search, scaled=scaled)
            since_cut += 1
            with timer.step("tracks"):
                tracker.update(frame.index, detections)
                new_face = any(d.track_id not in previous_tracks for d in detections)
                previous_tracks = {d.track_id for d in detections}
            with timer.step("mesh"):
                if meshes is not None:  # run above: carried, or the detector ran after all
                    mesh_schedule.ran(bool(meshes))
                    if not carried:
                        attach_meshes(detections, meshes)
                elif detections and mesh_schedule.should_run(new_face):
                    meshes = mesher.process(frame.rgb, len(detections))
                    mesh_schedule.ran(bool(meshes))
                    attach_meshes(detections, meshes)
                elif detections:
                    mesh_schedule.skipped()
                tracked = [d for d in detections if d.mesh_px is not None]  # by the tracking mesh
            if crop_mesher is not None:
                with timer.step("crop_mesh"):
                    for det in detections:
                        tries = crop_tries[det.track_id]
                        if det.mesh_px is None and not (tries[0] >= CROP_MESH_GIVE_UP and tries[1] == 0):
                            det.mesh_px = crop_mesher.mesh_for(frame.rgb, det.box_xyxy_px)
                            tries[0] += 1
                            tries[1] += det.mesh_px is not None
            with timer.step("tracks"):
                detections = drop_duplicate_faces(detections, last_face_box)
                held_by_mesh = detections if all(any(d is t for t in tracked) for d in detections) else []
                boxes = {d.track_id: mesh_box(d.mesh_px) for d in detections if d.mesh_px is not None}
                last_face_box.update(boxes)
                follow = _small_faces(boxes.values(), config.follow_small_below * min(frame.rgb.shape[:2]))
            if flow is not None:
                with timer.step("flow"):
                    for det in detections:
                        before = previous_meshes.get(det.track_id)
                        if det.mesh_px is not None and before is not None:
                            det.flow_px = flow.flow(previous_rgb, frame.rgb, before)
                    previous_rgb = frame.rgb
                    previous_meshes = {d.track_id: d.mesh_px for d in detections if d.mesh_px is not None}
            times.append(frame.time_s)
            shot_ids.append(shot)
            rows.extend((frame.index, d) for d in detections)
    except VideoError as exc:
        if not times:
            raise
        meta["warnings"].append(f"video truncated: {exc}")
    finally:
        mesher.close()
        if not lent:
            models.close()
    rows = _drop_unconfirmed_tracks(_drop_meshless_tracks(rows, config.min_track_mesh_fraction))
    nan_mesh = np.full((LANDMARKS, 3), np.nan, dtype=np.float32)
    meshes = [d.mesh_px for _, d in rows]
    return _Frames(
        time_s=np.asarray(times, dtype=np.float64),
        shot_id=np.asarray(shot_ids, dtype=np.int32),
        det_frame=np.asarray([f for f, _ in rows], dtype=np.int32),
        det_box=np.asarray([d.box_xyxy_px for _, d in rows], dtype=np.float32).reshape(-1, 4),
        det_score=np.asarray([d.score for _, d in rows], dtype=np.float32),
        det_model=np.asarray([d.model for _, d in rows], dtype=np.int8),
        det_track=np.asarray([d.track_id for _, d in rows], dtype=np.int32),
        det_mouth=np.asarray(
            [mouth_opening(m if m is not None else nan_mesh) for m in meshes], dtype=np.float32
        ),
        det_mesh=meshes,
        det_flow=[d.flow_px for _, d in rows],
    )


def _small_faces(mesh_boxes, max_side_px: float) -> list[np.ndarray]:
    """The ``(4,)`` mesh boxes whose larger side is under ``max_side_px``."""
    return [box for box in mesh_boxes if max(box[2] - box[0], box[3] - box[1]) < max_side_px]


def split_shots_where_faces_change(shot_id: np.ndarray, det_frame: np.ndarray, det_track: np.ndarray,
                                   min_frames: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Split a shot where its set of faces changes: ``(shot_id, det_track)`` with new shots and track ids.

    A dissolve changes the picture a little on every frame, so the frame-to-frame cut
    detector misses it and one "shot" holds two scenes; the IoU tracker may even carry a
    track from one scene's face onto the other's. Then the first scene's dominant face
    would leave the second without one (or the reverse), and velocity runs would span
    the change. So within a shot, every first frame and every frame after the last of a
    track of at least ``min_frames`` detections is a candidate boundary; boundaries that
    leave at least ``min_frames`` frames on both sides start new shots, and a track that
    crosses one is cut there into two tracks (tracks never span a shot)."""
    shot_id = np.asarray(shot_id)
    det_track = np.asarray(det_track).copy()
    next_id = int(det_track.max()) + 1 if len(det_track) else 0
    starts = np.zeros(len(shot_id), dtype=bool)
    starts[1:] = shot_id[1:] != shot_id[:-1]
    for shot in np.unique(shot_id):
        frames_in = np.flatnonzero(shot_id == shot)
        first_frame, stop = int(frames_in[0]), int(frames_in[-1]) + 1
        rows = (det_frame >= first_frame) & (det_frame < stop)
        candidates = set()
        for track in np.unique(det_track[rows]):
            own = det_frame[rows & (det_track == track)]
            if len(own) >= min_frames:
                candidates |= {int(own.min()), int(own.max()) + 1}
        previous = first_frame
        for boundary in sorted(candidates):
            if boundary - previous < min_frames or stop - boundary < min_frames:
                continue
            starts[boundary] = True
            previous = boundary
            for track in np.unique(det_track[rows]):
                own = rows & (det_track == track)
                if det_frame[own].min() < boundary <= det_frame[own].max():
                    det_track[own & (det_frame >= boundary)] = next_id
                    next_id += 1
    return np.cumsum(starts).astype(np.int32), det_track


def _drop_meshless_tracks(rows: list, min_fraction: float) -> list:
    """Drop the detections of tracks where fewer than ``min_fraction`` of the detections got a mesh.

    Every real face the detector finds at a usable size gets a mesh (tracked, or on a
    crop); MediaPipe's full-range detector also fires on scenery (a rocket, coins) at
    scores up to ~0.8, and no mesh ever forms there."""
    if min_fraction <= 0:
        return rows
    meshed, total = defaultdict(int), defaultdict(int)
    for _, det in rows:
        total[det.track_id] += 1
        meshed[det.track_id] += det.mesh_px is not None
    keep = {t for t in total if meshed[t] >= min_fraction * total[t]}
    return [(f, d) for f, d in rows if d.track_id in keep]


def _drop_unconfirmed_tracks(rows: list) -> list:
    """Drop the tracks found only by the tiled small-face search (``Detection.tiled``).

    A face the tiles find is followed on the next frames by the short-range model on a crop
    (or seen by the whole-frame models), so its track holds other detections; a track of
    tiled detections alone is a hypothesis nothing confirmed — on this footage, a head
    stamped on a coin that the static crop mesh took for a face, in one frame."""
    confirmed = {det.track_id for _, det in rows if not det.tiled}
    return [(f, d) for f, d in rows if d.track_id in confirmed]


def _per_frame_by_time(segments, time_s: np.ndarray, fps: float) -> np.ndarray:
    centres = time_s + 0.5 / fps
    speech = np.zeros(len(time_s), dtype=bool)
    for start, end in segments:
        speech |= (centres >= start) & (centres < end)
    return speech


def _envelope_by_time(samples: np.ndarray, time_s: np.ndarray, fps: float) -> np.ndarray:
    """RMS of the audio within each frame's span ``[t_f, t_f + 1/fps)`` (variable frame rates included)."""
    from emoforge.labeling.audio import SAMPLE_RATE_HZ

    samples = np.asarray(samples, dtype=np.float64)
    squares = np.concatenate([[0.0], np.cumsum(samples**2)])
    lo = np.clip(np.round(time_s * SAMPLE_RATE_HZ).astype(np.int64), 0, len(samples))
    hi = np.clip(np.round((time_s + 1.0 / fps) * SAMPLE_RATE_HZ).astype(np.int64), 0, len(samples))
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt((squares[hi] - squares[lo]) / (hi - lo))
    return np.where(hi > lo, rms, np.nan)


def _shots_stage(frames: _Frames, envelope: np.ndarray, config: LabelConfig) -> list[dict]:
    """Per shot: its tracks with sync scores, and the dominant face (the speaker where it can be told)."""
    from emoforge.labeling.sync import log_envelope, sync_score

    n = len(frames.time_s)
    log_env = log_envelope(envelope)
    shots = []
    for shot in range(int(frames.shot_id.max()) + 1 if n else 0):
        in_shot = np.flatnonzero(frames.shot_id == shot)
        start, stop = int(in_shot[0]), int(in_shot[-1]) + 1
        rows = np.flatnonzero((frames.det_frame >= start) & (frames.det_frame < stop))
        tracks, scores = [], {}
        for track_id in np.unique(frames.det_track[rows]):
            own = rows[frames.det_track[rows] == track_id]
            boxes = frames.det_face_box[own]
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            mouth = np.full(n, np.nan)
            mouth[frames.det_frame[own]] = frames.det_mouth[own]
            result = sync_score(mouth[start:stop], log_env[start:stop], config.sync_max_offset_frames)
            scores[int(track_id)] = result
            tracks.append(
                {
                    "track_id": int(track_id),
                    "frames": int(len(own)),
                    "first_frame": int(frames.det_frame[own].min()),
                    "last_frame": int(frames.det_frame[own].max()),
                    "mean_score": float(frames.det_score[own].mean()),
                    "mean_box_area_px": float(area.mean()),
                    "sync_score": None if not np.isfinite(result.score) else round(result.score, 4),
                    "sync_offset_frames": result.offset_frames if np.isfinite(result.score) else None,
                }
            )
        dominant, reason = _choose_dominant(tracks, scores, stop - start)
        shots.append(
            {
                "index": shot,
                "start_frame": start,
                "end_frame": stop,
                "tracks": tracks,
                "dominant_track_id": dominant,
                "dominant_reason": reason,
            }
        )
    return shots


def _choose_dominant(tracks: list[dict], scores: dict, shot_frames: int) -> tuple[int | None, str]:
    """The shot's main face: the only long track; else the one that speaks (sync); else the largest."""
    from emoforge.labeling.sync import pick_speaker

    if not tracks:
        return None, "no face"
    long_tracks = [t for t in tracks if t["frames"] >= max(3, 0.2 * shot_frames)] or tracks
    if len(long_tracks) == 1:
        return long_tracks[0]["track_id"], "only face"
    speaker = pick_speaker({t["track_id"]: scores[t["track_id"]] for t in long_tracks})
    if speaker is not None:
        return speaker, "speaks (mouth-audio sync)"
    largest = max(long_tracks, key=lambda t: t["mean_box_area_px"] * t["frames"])
    return largest["track_id"], "largest (speaker not told apart)"


def _dominant_arrays(frames: _Frames, shots: list[dict], n: int) -> dict[str, np.ndarray]:
    track = np.full(n, -1, dtype=np.int32)
    box = np.full((n, 4), np.nan, dtype=np.float32)
    mesh = np.full((n, LANDMARKS, 3), np.nan, dtype=np.float32)
    dominant_of_shot = {s["index"]: s["dominant_track_id"] for s in shots}
    for row, (f, t) in enumerate(zip(frames.det_frame, frames.det_track)):
        if dominant_of_shot.get(int(frames.shot_id[f])) == t:
            track[f] = t
            box[f] = frames.det_face_box[row]
            if frames.det_mesh[row] is not None:
                mesh[f] = frames.det_mesh[row]
    return {"dominant_track_id": track, "box_xyxy_px": box, "mesh_px": mesh}


def _pose_stage(frames: _Frames, dominant_track: np.ndarray, intrinsics,
                config: LabelConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Raw (unsmoothed) 6-DoF pose of the dominant face, track by track; and the rotation steps
    between consecutive frames measured from the image flow, ``(F, 3, 3)`` (NaN: none)."""
    from emoforge.labeling.pose import estimate_pose_track

    n = len(dominant_track)
    mesh = np.full((n, LANDMARKS, 3), np.nan)
    flow = np.full((n, LANDMARKS, 2), np.nan) if frames.det_flow is not None else None
    for row, (f, t) in enumerate(zip(frames.det_frame, frames.det_track)):
        if dominant_track[f] == t and frames.det_mesh[row] is not None:
            mesh[f] = frames.det_mesh[row]
            if flow is not None and frames.det_flow[row] is not None:
                flow[f] = frames.det_flow[row]
    rotation = np.full((n, 3, 3), np.nan)
    translation = np.full((n, 3), np.nan)
    euler = np.full((n, 3), np.nan)
    reprojection = np.full(n, np.nan)
    steps = np.full((n, 3, 3), np.nan)
    for track_id in np.unique(dominant_track[dominant_track >= 0]):
        index = np.flatnonzero(dominant_track == track_id)
        track_flow = None
        if flow is not None:
            track_flow = flow[index]
            track_flow[np.r_[True, np.diff(index) != 1]] = np.nan  # a step needs the frame just before
        result = estimate_pose_track(mesh[index], intrinsics, config.pose_method, track_flow)
        rotation[index], translation[index] = result.rotation, result.translation_mm
        euler[index], reprojection[index] = result.euler_deg, result.reprojection_px
        if result.step_rotation is not None:
            steps[index] = result.step_rotation
    valid = np.all(np.isfinite(rotation), axis=(1, 2))
    arrays = {
        "pose_valid": valid,
        "rotation": rotation,
        "yaw_pitch_roll_deg": euler.astype(np.float32),
        "translation_mm": translation.astype(np.float32),
        "pose_reprojection_px": reprojection.astype(np.float32),
    }
    return arrays, steps


def _velocity_stage(pose: dict, frames: _Frames, config: LabelConfig,
                    steps: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Raw velocity from raw rotations; the labelled one from the flow steps, chained and
    Gaussian-smoothed (``config.flow_velocity``), else from Gaussian-smoothed rotations (velocity.py).

    Runs are split by shot, by track (a new dominant track), and at jumps above
    ``max_velocity_deg_per_frame`` (a face swap inside a shot is not a head turn)."""
    from emoforge.labeling.velocity import (blend_by_speed, chain_rotations, smooth_rotations,
                                            velocity_deg_per_frame)

    valid = pose["pose_valid"]
    raw = velocity_deg_per_frame(pose["rotation"], valid, frames.shot_id)
    # Re-segment at implausible jumps and recompute, so no run spans a swap.
    jumps = np.nan_to_num(raw) > config.max_velocity_deg_per_frame
    segment = np.cumsum(jumps) + frames.shot_id.astype(np.int64) * (len(valid) + 1)
    raw = velocity_deg_per_frame(pose["rotation"], valid, segment)
    smoothed_rotation = smooth_rotations(pose["rotation"], valid, segment, config.smoothing_sigma_frames)
    smooth = velocity_deg_per_frame(smoothed_rotation, valid, segment)
    step_s = np.diff(frames.time_s)
    step_s = np.concatenate([step_s[:1], step_s]) if len(step_s) else np.ones(len(valid))
    # A run's first frame copies the second's velocity, so it takes the second's step too.
    first_of_run = valid & ~np.concatenate([[False], valid[:-1] & (segment[1:] == segment[:-1])])
    step_s = np.where(first_of_run, np.roll(step_s, -1), step_s)
    step_s = np.where(step_s > 0, step_s, np.nan)
    source, heavy_sigma, light_sigma = pose["rotation"], config.smoothing_sigma_frames, config.fast_smoothing_sigma_frames
    if config.flow_velocity and steps is not None:
        # the flow's steps, chained; frames without one take the smoothed rotations' step
        source = chain_rotations(pose["rotation"], steps, valid, segment, fallback=smoothed_rotation,
                                 max_step_deg=config.max_velocity_deg_per_frame)
        heavy_sigma, light_sigma = config.flow_smoothing_sigma_frames, config.flow_fast_smoothing_sigma_frames
        smooth = velocity_deg_per_frame(smooth_rotations(source, valid, segment, heavy_sigma), valid, segment)
    if light_sigma < heavy_sigma:
        light = velocity_deg_per_frame(smooth_rotations(source, valid, segment, light_sigma), valid, segment)
        smooth = blend_by_speed(smooth, light, smooth / step_s, config.fast_from_deg_per_s, config.fast_full_deg_per_s)
    return {
        "velocity_raw_deg_per_frame": raw.astype(np.float32),
        "velocity_deg_per_frame": smooth.astype(np.float32),
        "velocity_deg_per_s": (smooth / step_s).astype(np.float32),
        "rotation_smoothed": smoothed_rotation,
    }
