"""Scenes of generated footage: what is on screen and on the soundtrack, with its truth.

A scene is a background plus zero or more face *actors* (a portrait re-rendered as a
3-D head under a known trajectory), and the sounds laid under it. Kinds:

| kind | picture | sound | a curator should |
| --- | --- | --- | --- |
| ``talking`` | one face, calm or lively head motion | its speech | keep |
| ``fast`` | one speaking face shaking fast, motion-blurred | its speech | keep or reject by motion |
| ``extreme`` | one speaking face held at a large yaw/pitch | its speech | reject by pose |
| ``two_faces`` | two faces, one speaking | the speaker | reject, or keep the speaker |
| ``small_face`` | one speaking face far too small | its speech | reject (face size) |
| ``silent`` | one face that does not speak | room tone | reject (no speech) |
| ``music`` | one face that does not speak | music or tones | reject (no speech) |
| ``voiceover`` | no face | speech | reject (no face) |
| ``no_face`` | no face | room tone | reject (no face) |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from emoforge.curation.footage.motion import STYLES, PoseTrajectory, blink_track

SPEAKING_KINDS = ("talking", "fast", "extreme", "two_faces", "small_face")
DISTRACTOR_KINDS = ("no_face", "two_faces", "small_face", "silent", "voiceover", "music", "fast", "extreme")
# Face-less backdrops: scikit-image's sample photos with no face in them.
SCENERY = ("rocket", "coffee", "hubble_deep_field", "coins", "brick", "grass", "gravel", "colorwheel")


@dataclass
class FaceState:
    """One face at one frame: the truth written for it."""

    actor: "FaceActor"
    box_xyxy_px: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    jaw_open: float
    blink: float
    speaking: bool


@dataclass(eq=False)  # identity: an actor is one face in one scene
class FaceActor:
    """A portrait re-rendered as a moving 3-D head within a scene."""

    portrait: str
    trajectory: PoseTrajectory
    center_frac: tuple[float, float]  # face centre as a fraction of the frame (x, y)
    face_width_frac: float  # face width as a fraction of the frame's shorter side
    speech_segments_s: list[tuple[float, float]] = field(default_factory=list)  # scene time
    jaw_times_s: np.ndarray | None = None  # dense jaw curve, scene time
    jaw_values: np.ndarray | None = None
    blink_seed: int = 0
    blur_samples: int = 1  # > 1: motion blur by averaging sub-frame renders
    exposure_s: float = 0.02
    track_id: int = -1  # assigned when the video's truth is assembled

    def jaw_at(self, time_s: float) -> float:
        if self.jaw_times_s is None:
            return 0.0
        return float(np.interp(time_s, self.jaw_times_s, self.jaw_values, left=0.0, right=0.0))

    def speaking_at(self, time_s: float) -> bool:
        return any(start <= time_s < end for start, end in self.speech_segments_s)

    @property
    def _blinks(self):
        return _blink_function(self.blink_seed)

    def render(self, camera, time_s: float):
        """Render at scene time ``time_s``: ``(rgb uint8, alpha float32, FaceState)``.

        ``rgb`` is not premultiplied; outside the patch, where ``alpha`` is 0, it is undefined.
        """
        from emoforge.curation.footage.head import head_for

        head = head_for(self.portrait)
        short_px = min(camera.width, camera.height)
        face_width_px = self.face_width_frac * short_px

        def pose(t: float):
            sway = self.trajectory.sway(t)[0] * face_width_px
            center = (self.center_frac[0] * camera.width + sway[0], self.center_frac[1] * camera.height + sway[1])
            return self.trajectory.rotation(t)[0], head.rest_translation(camera, center, face_width_px)

        blink = self._blinks(time_s)
        jaw = self.jaw_at(time_s)
        rotation, translation = pose(time_s)
        result = head.render(camera, rotation, translation, jaw_open=jaw, blink=blink)
        rgb, alpha = result.rgb, result.alpha
        if self.blur_samples > 1:  # motion blur: average sub-frame renders; the truth stays at the centre
            premultiplied = rgb.astype(np.float32) * alpha[..., None]
            coverage = alpha.astype(np.float32)
            offsets = np.linspace(-self.exposure_s / 2, self.exposure_s / 2, self.blur_samples)
            for offset in offsets[offsets != 0]:
                sub_rotation, sub_translation = pose(time_s + offset)
                sub = head.render(camera, sub_rotation, sub_translation, jaw_open=jaw, blink=blink)
                premultiplied += sub.rgb.astype(np.float32) * sub.alpha[..., None]
                coverage += sub.alpha
            alpha = coverage / float(len(offsets))
            rgb = np.clip(premultiplied / np.maximum(coverage, 1e-6)[..., None] + 0.5, 0, 255).astype(np.uint8)
        state = FaceState(self, result.box_xyxy_px, rotation, translation, jaw, blink, self.speaking_at(time_s))
        return rgb, alpha, state


def composite_over(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> None:
    """``frame = rgb * alpha + frame * (1 - alpha)`` in place (uint8), only inside the patch's box."""
    import cv2

    x, y, w, h = cv2.boundingRect((alpha > 0).astype(np.uint8))
    if w == 0 or h == 0:
        return
    window = (slice(y, y + h), slice(x, x + w))
    a = alpha[window][..., None]
    blended = rgb[window].astype(np.float32) * a + frame[window].astype(np.float32) * (1.0 - a)
    frame[window] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _blink_function(seed: int):
    rng = np.random.default_rng(seed)
    grid_s = np.arange(0, 120, 0.005)
    closure = blink_track(grid_s, 120.0, rng)
    return lambda t: float(np.interp(t, grid_s, closure))


@dataclass(eq=False)
class Scene:
    kind: str
    start_s: float
    end_s: float
    backdrop: "Backdrop"
    actors: list[FaceActor]
    # Sounds in scene time: (start_s, samples at the video's audio rate, label).
    sounds: list[tuple[float, np.ndarray, str]] = field(default_factory=list)
    speech_meta: list[dict] = field(default_factory=list)  # text, voice, language, phonemes (scene time)
    transition_in: str = "cut"  # how the scene begins: "cut" or "dissolve" (from the previous one)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def render(self, camera, time_s: float) -> tuple[np.ndarray, list[FaceState]]:
        """The frame at video time ``time_s`` (may lie outside the scene during a dissolve)."""
        local_s = time_s - self.start_s
        frame = self.backdrop.render(camera, local_s)  # a fresh uint8 array
        states = []
        for actor in self.actors:
            rgb, alpha, state = actor.render(camera, local_s)
            composite_over(frame, rgb, alpha)
            states.append(state)
        return frame, states


@dataclass
class Backdrop:
    """What is behind the faces: a blurred fill of a portrait, or panning scenery."""

    source: str  # "portrait:NAME" or "scenery:NAME"
    pan: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x0, y0, x1, y1 of the crop centre drift
    zoom: float = 1.0
    scene_duration_s: float = 1.0

    def render(self, camera, local_s: float) -> np.ndarray:
        import cv2

        base = _backdrop_image(self.source, camera.width, camera.height, self.zoom)
        progress = np.clip(local_s / max(self.scene_duration_s, 1e-6), -0.5, 1.5)
        x0, y0, x1, y1 = self.pan
        extra_w, extra_h = base.shape[1] - camera.width, base.shape[0] - camera.height
        left = (0.5 + 0.5 * (x0 + (x1 - x0) * progress)) * extra_w
        top = (0.5 + 0.5 * (y0 + (y1 - y0) * progress)) * extra_h
        shift = np.float32([[1, 0, -left], [0, 1, -top]])
        return cv2.warpAffine(base, shift, (camera.width, camera.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@lru_cache(maxsize=16)
def _backdrop_image(source: str, width: int, height: int, zoom: float) -> np.ndarray:
    """The backdrop, resized to cover the frame with margin for panning (read-only, cached)."""
    import cv2

    kind, name = source.split(":", 1)
    if kind == "portrait":
        from emoforge.curation.footage.portraits import load_portrait

        image = load_portrait(name)
    else:
        image = _scenery(name)
    scale = zoom * 1.15 * max(width / image.shape[1], height / image.shape[0])
    size = (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if kind == "portrait":  # a soft, darkened fill: the look of a vertical video's side bars
        sigma = max(size) / 40
        resized = (cv2.GaussianBlur(resized, (0, 0), sigma) * 0.6).astype(np.uint8)
    resized.setflags(write=False)
    return resized


def _scenery(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def speaking_actor_kwargs(kind: str, rng: np.random.Generator) -> dict:
    """Placement and motion of the main face of a scene kind."""
    if kind == "small_face":
        return dict(
            trajectory=PoseTrajectory.random(STYLES["calm"], rng),
            center_frac=(rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.6)),
            face_width_frac=rng.uniform(0.05, 0.07),
        )
    if kind == "fast":
        return dict(
            trajectory=PoseTrajectory.random(STYLES["fast"], rng),
            center_frac=(0.5, 0.45),
            face_width_frac=rng.uniform(0.3, 0.38),
            blur_samples=4,
            exposure_s=0.03,
        )
    if kind == "extreme":
        style = STYLES["extreme"]
        yaw = rng.choice([-1, 1]) * rng.uniform(30, 33)
        pitch = rng.choice([-1, 1]) * rng.uniform(10, 20)
        style = type(style)(style.amplitude_deg, style.frequency_hz, (float(yaw), float(pitch), 0.0))
        return dict(trajectory=PoseTrajectory.random(style, rng), center_frac=(0.5, 0.45), face_width_frac=0.34)
    style = STYLES["lively"] if rng.random() < 0.5 else STYLES["calm"]
    return dict(
        trajectory=PoseTrajectory.random(style, rng),
        center_frac=(rng.uniform(0.42, 0.58), rng.uniform(0.4, 0.5)),
        face_width_frac=rng.uniform(0.3, 0.42),
    )
