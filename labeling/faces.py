"""Faces per frame: MediaPipe face detection, the 478-point face mesh, and face tracks (paper §4.1).

- :class:`FaceDetector` runs MediaPipe's short-range model (faces within ~2 m) on every
  frame and its full-range model (smaller, farther faces) every ``full_range_every``
  frames and on every frame where the short-range model finds nothing; the two sets of
  boxes are merged by non-maximum suppression (IoU ≥ 0.5 keeps the higher score).
  Boxes are MediaPipe's, in displayed pixels, ``box_xyxy_px = (x0, y0, x1, y1)``.
- :class:`FaceMesher` runs MediaPipe's face mesh (478 points with iris refinement) in
  tracking mode (``static_image_mode=False``): it re-detects only when tracking is
  lost. Points are lifted to pixels on every axis: ``(x·W, y·H, z·W)`` — MediaPipe's z
  is on the scale of its normalised x — so ``frontal_rotation`` can use them directly.
- :class:`CropMesher` runs the mesh (static mode) on an upscaled crop around a detection
  the tracking mesh missed: MediaPipe's mesh detector sees the frame at 128 px, so a
  face under ~10 % of the frame gets no mesh (and the detector's box for it can be far
  too large). A mesh found on the crop, with its nose inside the detection, gives that
  detection its face box and pose; a track whose detections mostly get no mesh either
  way is not a face (scenery the full-range model fires on) and is dropped by the labeler.
- :class:`FaceTracker` links boxes into tracks by IoU, within a shot only (a cut ends
  every track); track ids are unique within a video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emoforge.errors import require

SHORT_RANGE, FULL_RANGE = 0, 1
NOSE_TIP = 1


@dataclass
class Detection:
    box_xyxy_px: np.ndarray  # (4,) float
    score: float
    model: int  # SHORT_RANGE or FULL_RANGE
    track_id: int = -1
    mesh_px: np.ndarray | None = None  # (478, 3) float32 when the mesh tracked this face


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes: ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a + area_b - inter)
    return np.nan_to_num(iou)


def non_max_suppression(detections: list[Detection], iou_threshold: float = 0.5) -> list[Detection]:
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if not kept or box_iou(det.box_xyxy_px, np.stack([k.box_xyxy_px for k in kept])).max() < iou_threshold:
            kept.append(det)
    return kept


def _mediapipe():
    require("matplotlib", "faces")  # mediapipe imports it
    return require("mediapipe", "faces")


class FaceDetector:
    """MediaPipe face detection, short- and full-range, merged."""

    def __init__(self, min_score: float = 0.5, full_range_every: int = 5):
        mp = _mediapipe()
        self.min_score = min_score
        self.full_range_every = max(1, int(full_range_every))
        self._short = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=min_score)
        self._full = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)

    def detect(self, rgb: np.ndarray, frame_index: int = 0) -> list[Detection]:
        found = self._run(self._short, rgb, SHORT_RANGE)
        if not found or frame_index % self.full_range_every == 0:
            found += self._run(self._full, rgb, FULL_RANGE)
        return non_max_suppression(found)

    def _run(self, model, rgb: np.ndarray, kind: int) -> list[Detection]:
        height, width = rgb.shape[:2]
        result = model.process(rgb)
        out = []
        for det in result.detections or ():
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height]
            )
            box = np.clip(box, 0, [width, height, width, height])
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                out.append(Detection(box, float(det.score[0]), kind))
        return out

    def close(self) -> None:
        self._short.close()
        self._full.close()


class FaceMesher:
    """MediaPipe face mesh in tracking mode; restart it at every cut with :meth:`reset`."""

    def __init__(self, max_faces: int = 2, min_detection: float = 0.5, min_tracking: float = 0.5):
        self._args = dict(
            static_image_mode=False,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection,
            min_tracking_confidence=min_tracking,
        )
        self._mp = _mediapipe()
        self._mesh = self._mp.solutions.face_mesh.FaceMesh(**self._args)

    def reset(self) -> None:
        self._mesh.close()
        self._mesh = self._mp.solutions.face_mesh.FaceMesh(**self._args)

    def process(self, rgb: np.ndarray) -> list[np.ndarray]:
        """``(478, 3)`` float32 meshes in pixels, one per face found."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        meshes = []
        for face in result.multi_face_landmarks or ():
            points = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            meshes.append(points * np.array([width, height, width], dtype=np.float32))
        return meshes

    def close(self) -> None:
        self._mesh.close()


class CropMesher:
    """Face mesh on an upscaled square crop around one detection (see the module docstring)."""

    def __init__(self, crop_px: int = 256, context: float = 1.4, min_detection: float = 0.5):
        self.crop_px = int(crop_px)
        self.context = float(context)
        self._mesh = _mediapipe().solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=min_detection
        )

    def mesh_for(self, rgb: np.ndarray, box_xyxy_px: np.ndarray) -> np.ndarray | None:
        """``(478, 3)`` float32 mesh in frame pixels (x, y, z as :class:`FaceMesher`), or None."""
        import cv2

        x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)
        centre_x, centre_y = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        side = self.context * max(x1 - x0, y1 - y0, 1.0)
        scale = self.crop_px / side  # crop pixels per frame pixel
        half = self.crop_px / 2.0
        warp = np.float32([[scale, 0, half - centre_x * scale], [0, scale, half - centre_y * scale]])
        crop = cv2.warpAffine(rgb, warp, (self.crop_px, self.crop_px), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
        points *= self.crop_px  # crop pixels on every axis (z on x's scale)
        mesh = np.empty_like(points)
        mesh[:, 0] = (points[:, 0] - half) / scale + centre_x
        mesh[:, 1] = (points[:, 1] - half) / scale + centre_y
        mesh[:, 2] = points[:, 2] / scale
        nose_x, nose_y = mesh[NOSE_TIP, :2]
        if not (x0 <= nose_x <= x1 and y0 <= nose_y <= y1):
            return None  # a face elsewhere in the context margin: not this detection's
        return mesh.astype(np.float32)

    def close(self) -> None:
        self._mesh.close()


def attach_meshes(detections: list[Detection], meshes: list[np.ndarray]) -> None:
    """Give each mesh to the detection whose box holds its nose tip (nearest box centre wins)."""
    free = list(range(len(detections)))
    for mesh in meshes:
        nose = mesh[NOSE_TIP, :2]
        best, best_distance = None, np.inf
        for i in free:
            x0, y0, x1, y1 = detections[i].box_xyxy_px
            if x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1:
                distance = np.hypot(nose[0] - (x0 + x1) / 2, nose[1] - (y0 + y1) / 2)
                if distance < best_distance:
                    best, best_distance = i, distance
        if best is not None:
            detections[best].mesh_px = mesh
            free.remove(best)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_frame: int


@dataclass
class FaceTracker:
    """Greedy IoU tracking inside one shot; call :meth:`cut` at every shot boundary."""

    min_iou: float = 0.3
    max_gap_frames: int = 10
    next_id: int = 0
    _active: list[_Track] = field(default_factory=list)

    def cut(self) -> None:
        self._active = []

    def update(self, frame_index: int, detections: list[Detection]) -> None:
        self._active = [t for t in self._active if frame_index - t.last_frame <= self.max_gap_frames]
        if detections and self._active:
            iou = box_iou(np.stack([d.box_xyxy_px for d in detections]), np.stack([t.box for t in self._active]))
        else:
            iou = np.zeros((len(detections), len(self._active)))
        taken: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            d, t = np.unravel_index(flat, iou.shape)
            if iou[d, t] < self.min_iou:
                break
            if detections[d].track_id >= 0 or t in taken:
                continue
            detections[d].track_id = self._active[t].track_id
            self._active[t].box, self._active[t].last_frame = detections[d].box_xyxy_px, frame_index
            taken.add(t)
        for det in detections:
            if det.track_id < 0:
                det.track_id = self.next_id
                self._active.append(_Track(self.next_id, det.box_xyxy_px, frame_index))
                self.next_id += 1
