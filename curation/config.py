"""Curation settings: one frozen dataclass per stage, one :class:`CurationConfig` for a run.

A run's resolved configuration is written beside its outputs (``DIR/config.json``).
``--config FILE`` (JSON or YAML) overrides any field by section, e.g.::

    filters:
      min_face_width_px: 128
      max_abs_yaw_deg: 30
    clips:
      clip_s: 4.0
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from emoforge.errors import UserError


@dataclass(frozen=True)
class ProbeConfig:
    max_duration_s: float = 3 * 3600.0  # longer files are rejected before any decoding
    max_pixels: int = 3840 * 2160  # larger frames are rejected (a decode would not fit the budget)
    silence_windows: int = 8  # audio windows sampled across the file to reject silent files early
    silence_dbfs: float = -55.0


@dataclass(frozen=True)
class SceneConfig:
    cut_threshold: float = 27.0  # PySceneDetect ContentDetector score
    min_scene_s: float = 0.5
    dissolve_window_frames: int = 5  # k: frames either side of a dissolve candidate
    dissolve_min_change: float = 12.0  # mean abs grey-level change across 2k frames
    dissolve_min_histogram_change: float = 0.35  # L1 distance of colour histograms across 2k frames (0..2)
    dissolve_max_residual: float = 0.5  # midpoint residual / change: small for a linear blend
    # A blend of two scenes that look alike hardly changes the colours; one this linear
    # (residual / change, with at least this change) needs no colour change. Motion in the
    # generated footage stays above 0.23; a blend sits at 0.08-0.09.
    dissolve_linear_residual: float = 0.15
    dissolve_linear_min_change: float = 18.0
    analysis_width_px: int = 160


@dataclass(frozen=True)
class ScreenConfig:
    sample_fps: float = 2.0  # face detection rate while screening scenes
    detect_width_px: int = 640
    min_face_fraction: float = 0.6  # samples with a usable face, for a scene to be kept
    max_multi_face_fraction: float = 0.3  # samples with a second comparable face
    second_face_ratio: float = 0.5  # a second face counts when at least this wide relative to the first
    min_face_width_px: float = 96.0  # in displayed source pixels


@dataclass(frozen=True)
class FilterConfig:
    min_clip_s: float = 2.0
    min_face_width_px: float = 96.0
    min_face_frames: float = 0.9  # fraction of a clip's frames with the tracked face
    max_abs_yaw_deg: float = 30.0  # p95 over the clip; generated "extreme" scenes sit at 29-36°
    max_abs_pitch_deg: float = 25.0
    min_speech_fraction: float = 0.4  # talking with pauses passes; silent and music scenes measure ~0
    min_sharpness: float = 20.0  # variance of the Laplacian over the face crop
    max_av_offset_frames: int = 3


@dataclass(frozen=True)
class ClipConfig:
    size_px: int = 512  # the paper's crop size
    fps: int = 25
    audio_rate_hz: int = 16000
    clip_s: float = 5.0  # spans are cut into clips of this length (the last may be shorter)
    face_scale: float = 2.2  # crop side / union face box side
    crf: int = 18
    # A keyframe every 12 frames: a training sample (n + f = 16 frames) then decodes from
    # the nearest keyframe, not from the clip's start (shards' streaming speed, docs/performance.md).
    keyframe_interval: int = 12


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: start a local cluster
    num_cpus: int | None = None  # for a local cluster; None: all
    scan_actors: int | None = None  # None: one per CPU
    label_actors: int | None = None
    actor_num_cpus: float = 0.5  # fractional, so read tasks are never starved (DESIGN.md §6)
    max_in_flight: int = 4  # per stage and actor: bounds the object store
    pin_cores: bool = True  # a local cluster's actors each bound to one core, round robin (emoforge.cores; not when joining a cluster or under a CPU quota: pipeline._actor_cores)


@dataclass(frozen=True)
class CurationConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    scenes: SceneConfig = field(default_factory=SceneConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    clips: ClipConfig = field(default_factory=ClipConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    download: dict = field(default_factory=dict)  # DownloadConfig fields (curation/download.py)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CurationConfig":
        sections = {}
        for section in dataclasses.fields(cls):
            given = values.get(section.name, {})
            if not isinstance(given, dict):
                raise UserError(f"config section {section.name!r} must be a mapping")
            if section.name == "download":
                sections["download"] = dict(given)
                continue
            default = getattr(cls(), section.name)
            known = {f.name for f in dataclasses.fields(default)}
            unknown = sorted(set(given) - known)
            if unknown:
                raise UserError(f"unknown config key(s) in {section.name}: {', '.join(unknown)}")
            sections[section.name] = dataclasses.replace(default, **given)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError(f"unknown config section(s): {', '.join(unknown)}")
        return cls(**sections)


def load_config(path: str | Path | None) -> CurationConfig:
    if path is None:
        return CurationConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as exc:  # the parsers' many error types all mean "not valid"
        raise UserError(f"cannot parse config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(f"config {path} must be a mapping of sections")
    try:
        return CurationConfig.from_dict(values)
    except TypeError as exc:
        raise UserError(f"bad config {path}: {exc}") from None
