"""Faces per frame: MediaPipe face detection, the 478-point face mesh, and face tracks (paper §4.1).

- :class:`FaceDetector` runs MediaPipe's short-range model (faces within ~2 m) on every
  frame and its full-range model (smaller, farther faces) every ``full_range_every``
  frames, and on a frame where the short-range model finds nothing if the frame before
  showed a face or the caller asks for the tiled search (below); so through a stretch
  without faces only on those schedules (the full-range model costs ~3x the short-range
  one: ~7 against ~2.3 ms on the 2-core VM). Both see the frame area-downscaled (the
  caller's ``scaled`` copy). The two sets of
  boxes are merged by non-maximum suppression (IoU ≥ 0.5 keeps the higher score).
  Boxes are MediaPipe's, in displayed pixels, ``box_xyxy_px = (x0, y0, x1, y1)``.
  *Small faces*: both models see the whole frame at 128 / 192 px, where a face under ~6 %
  of the frame is a few pixels and is found in few frames, if any. So on frames where the
  caller asks (``search_tiles``: the labeler asks at a shot's first frame and every
  ``tile_every`` frames after) and neither model finds a face, the full-range model also
  looks at overlapping square tiles of the frame (:func:`square_tiles`: the frame's short
  side, two for 16:9), which shows it such a face 1.5-2x larger; and a face the caller
  saw in the previous frame (``follow_boxes``: the labeler passes its small meshed faces)
  that the whole-frame models miss is looked for by the short-range model on a crop of
  ``follow_context`` times its size around where it was.
- :class:`FaceMesher` runs MediaPipe's face mesh (478 points with iris refinement) in
  tracking mode (``static_image_mode=False``), on a graph sized to the faces the detector
  found in the shot so far (MediaPipe re-detects on every frame where it tracks fewer faces
  than its graph's size); :class:`MeshSchedule` skips it on frames after it found nothing.
  Points are lifted to pixels on every axis: ``(x·W, y·H, z·W)`` — MediaPipe's z
  is on the scale of its normalised x — so ``frontal_rotation`` can use them directly.
- :class:`CropMesher` runs the mesh (static mode) on an upscaled crop around a detection
  the tracking mesh missed: MediaPipe's mesh detector sees the frame at 128 px, so a
  face under ~10 % of the frame gets no mesh (and the detector's box for it can be far
  too large). A mesh found on the crop, with its nose inside the detection, gives that
  detection its face box and pose; a track whose detections mostly get no mesh either
  way is not a face (scenery the full-range model fires on) and is dropped by the labeler.
- :func:`carry_detections`: where the tracking mesh holds every face of the last frame, the
  labeler runs the detector on only some frames (``LabelConfig.detect_every``); between,
  the mesh's faces carry the last boxes (``CARRIED``), and when they do not pair one to one
  with the last frame's (a face lost, one more) the detector runs after all.
- :class:`FaceTracker` links boxes into tracks by IoU, within a shot only (a cut ends
  every track); track ids are unique within a video.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from emoforge.errors import require

SHORT_RANGE, FULL_RANGE = 0, 1
CARRIED = 2  # not a detector's box: the last one, carried by the tracking mesh over a frame the detector skipped
NOSE_TIP = 1


@dataclass
class Detection:
    box_xyxy_px: np.ndarray  # (4,) float
    score: float
    model: int  # SHORT_RANGE, FULL_RANGE or CARRIED (carry_detections)
    track_id: int = -1
    mesh_px: np.ndarray | None = None  # (478, 3) float32 when the mesh tracked this face
    flow_px: np.ndarray | None = None  # (478, 2) float32 landmark motion since the previous frame (flow.py)
    tiled: bool = False  # found only by the tiled search (a hypothesis until another pass finds it too)


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


class _Graph:
    """A MediaPipe solution's graph (``mp.solutions``), run one image at a time.

    ``SolutionBase.process`` spends ~0.3-0.7 ms of Python a call around the graph's own
    work (measured on the 2-core VM: the short-range detector 2.9 -> 2.2-2.4 ms a call): it builds
    a new ``namedtuple`` class on every call (whose reference cycles the garbage collector
    then walks) and copies every writeable image into its packet. Here the graph the
    solution built, with its options, gets the image by reference (a read-only view of it:
    MediaPipe holds a reference to the array while its packet lives; the caller's array
    keeps its flags) and only the output stream wanted is read. These attributes are those
    of the pinned MediaPipe (0.10.21, pyproject.toml)."""

    def __init__(self, solution, output: str):
        self.solution = solution
        self._output = output
        ((self._stream, self._kind),) = solution._input_stream_type_info.items()

    def run(self, rgb: np.ndarray) -> list:
        """The output stream's protos for ``rgb`` (``(H, W, 3)`` uint8); ``[]`` when there are none."""
        from mediapipe.python import packet_getter

        image = np.ascontiguousarray(rgb).view()
        image.flags.writeable = False
        solution = self.solution
        solution._graph_outputs.clear()
        solution._simulated_timestamp += 33333  # as process() does: a 30 fps clock
        packet = solution._make_packet(self._kind, image).at(solution._simulated_timestamp)
        solution._graph.add_packet_to_input_stream(stream=self._stream, packet=packet)
        solution._graph.wait_until_idle()
        out = solution._graph_outputs.get(self._output)
        return [] if out is None or out.is_empty() else packet_getter.get_proto_list(out)

    def close(self) -> None:
        self.solution.close()


def square_tiles(width: int, height: int, overlap: float = 0.1) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles ``(x0, y0, x1, y1)`` of the frame's short side along its long side
    (at least ``overlap`` of a tile shared by neighbours); one tile for a square frame."""
    side, long = min(width, height), max(width, height)
    count = 1 if long <= side else int(np.ceil((long - overlap * side) / ((1.0 - overlap) * side)))
    starts = np.linspace(0, long - side, count).round().astype(int) if count > 1 else [0]
    if width >= height:
        return [(int(x), 0, int(x) + side, height) for x in starts]
    return [(0, int(y), width, int(y) + side) for y in starts]


def _holds(box: np.ndarray, point: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


class FaceDetector:
    """MediaPipe face detection, short- and full-range, merged; tiles and crops for small faces."""

    def __init__(self, min_score: float = 0.5, full_range_every: int = 20, follow_context: float = 4.0):
        mp = _mediapipe()
        self.min_score = min_score
        self.full_range_every = max(1, int(full_range_every))
        self.follow_context = float(follow_context)
        detection = mp.solutions.face_detection.FaceDetection
        self._short = _Graph(detection(model_selection=0, min_detection_confidence=min_score), "detections")
        self._full = _Graph(detection(model_selection=1, min_detection_confidence=min_score), "detections")
        self._face_before = True  # the last frame showed a face (or there was none): see the module docstring

    def restart(self) -> None:
        """Forget the last frame, as before a video's first: the graphs themselves keep nothing
        from one image to the next, so one detector serves video after video."""
        self._face_before = True

    def detect(self, rgb: np.ndarray, frame_index: int = 0, follow_boxes=(), search_tiles: bool = False,
               scaled: tuple[np.ndarray, int] | None = None) -> list[Detection]:
        """Faces in ``rgb``; ``follow_boxes``: ``(4,)`` boxes of small faces in the previous frame;
        ``search_tiles``: look at tiles too if the whole frame shows no face; ``scaled``: the
        frame area-downscaled by a whole factor, and the factor (``video.downscaled``), for the
        whole-frame passes (boxes still come out in ``rgb``'s pixels).

        The whole-frame passes see the frame at 128 / 192 px, so a copy a few times that size
        loses them nothing and spares MediaPipe copying and resampling the full frame (an area
        average is also a better low-pass than its bilinear resampling). Tiles and follow crops
        look for faces a few percent of the frame wide, and see the full frame."""
        height, width = rgb.shape[:2]
        whole, factor = scaled if scaled is not None else (rgb, 1)
        found = self._run(self._short, whole, SHORT_RANGE, scale=factor)
        for box in follow_boxes:
            centre = (np.asarray(box[:2]) + np.asarray(box[2:])) / 2.0
            if not any(_holds(d.box_xyxy_px, centre) for d in found):
                half = self.follow_context * max(box[2] - box[0], box[3] - box[1], 8.0) / 2.0
                region = (int(max(0, centre[0] - half)), int(max(0, centre[1] - half)),
                          int(min(width, centre[0] + half)), int(min(height, centre[1] + half)))
                found += [d for d in self._run(self._short, rgb, SHORT_RANGE, region)
                          if _holds(d.box_xyxy_px, centre) or _holds(box, (d.box_xyxy_px[:2] + d.box_xyxy_px[2:]) / 2)]
        if frame_index % self.full_range_every == 0 or (not found and (self._face_before or search_tiles)):
            found += self._run(self._full, whole, FULL_RANGE, scale=factor)
        if not found and search_tiles:
            for region in square_tiles(width, height):
                for det in self._run(self._full, rgb, FULL_RANGE, region):
                    det.tiled = True
                    found.append(det)
        self._face_before = bool(found)
        return non_max_suppression(found)

    def _run(self, model, rgb: np.ndarray, kind: int, region=None, scale: int = 1) -> list[Detection]:
        """Detections of ``model`` on ``rgb`` or on its ``region`` ``(x0, y0, x1, y1)``, in
        ``rgb``'s pixels times ``scale`` (the factor ``rgb`` was downscaled by)."""
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = region if region is not None else (0, 0, width, height)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        image = rgb if region is None else np.ascontiguousarray(rgb[y0:y1, x0:x1])
        out = []
        for det in model.run(image):
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [x0 + rel.xmin * (x1 - x0), y0 + rel.ymin * (y1 - y0),
                 x0 + (rel.xmin + rel.width) * (x1 - x0), y0 + (rel.ymin + rel.height) * (y1 - y0)]
            )
            box = np.clip(box, [x0, y0, x0, y0], [x1, y1, x1, y1]) * scale
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                out.append(Detection(box, float(det.score[0]), kind))
        return out

    def close(self) -> None:
        self._short.close()
        self._full.close()


_LANDMARK_BYTES = 17  # one landmark on the wire: 0x0a 0x0f (message, 15 bytes), then x, y, z: a tag and 4 bytes each
_XYZ_TAGS = {0: 0x0A, 1: 0x0F, 2: 0x0D, 7: 0x15, 12: 0x1D}  # byte offset in a landmark -> expected byte
_XYZ_BYTES = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]  # the little-endian float32 x, y, z


def _landmarks(face, dtype) -> np.ndarray:
    """MediaPipe's ``NormalizedLandmarkList`` -> ``(N, 3)`` normalised x, y, z.

    The mesh is read every frame, and reading 478 x 3 protobuf fields from Python costs
    ~1.5 ms; its serialised bytes are read by numpy instead (~40 µs) when every landmark
    holds exactly x, y and z, in order (what the face mesh writes); anything else (a
    visibility, a field missing) is read field by field."""
    count = len(face.landmark)
    raw = np.frombuffer(face.SerializeToString(), np.uint8)
    if raw.size == count * _LANDMARK_BYTES:
        rows = raw.reshape(count, _LANDMARK_BYTES)
        if all((rows[:, offset] == tag).all() for offset, tag in _XYZ_TAGS.items()):
            return rows[:, _XYZ_BYTES].copy().view("<f4").reshape(count, 3).astype(dtype)
    values = itertools.chain.from_iterable((p.x, p.y, p.z) for p in face.landmark)
    return np.fromiter(values, dtype, 3 * count).reshape(-1, 3)


class FaceMesher:
    """MediaPipe face mesh in tracking mode; restart it at every cut with :meth:`reset`.

    MediaPipe's mesh graph runs its own face detector on every frame where it tracks fewer
    faces than its ``max_num_faces`` (to find a new one), so a graph for two faces on a
    one-face frame pays a detection each frame (~2.5 ms of its ~7.5 at 720p). So the
    caller says how many faces it expects (``expected_faces``: the detector's count) and
    the mesh runs a graph for the most faces expected since the last reset, up to
    ``max_faces``: one-face shots get a one-face graph; a shot where a second face shows up
    continues on a (fresh) two-face graph. Each graph is used for one stretch of frames per
    shot, so none resumes from a stale tracking state."""

    def __init__(self, max_faces: int = 2, min_detection: float = 0.5, min_tracking: float = 0.5):
        self.max_faces = max(1, int(max_faces))
        self._args = dict(
            static_image_mode=False,
            refine_landmarks=True,
            min_detection_confidence=min_detection,
            min_tracking_confidence=min_tracking,
        )
        self._mp = _mediapipe()
        self.graph_faces = 0  # faces the graph in use tracks: the most expected since the last reset (0: none yet)
        self._mesh = None

    def reset(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
        self._mesh, self.graph_faces = None, 0

    def process(self, rgb: np.ndarray, expected_faces: int | None = None) -> list[np.ndarray]:
        """``(478, 3)`` float32 meshes in pixels, one per face found; ``expected_faces``:
        how many faces the frame shows (None: ``max_faces``)."""
        faces = self.max_faces if expected_faces is None else min(max(int(expected_faces), 1), self.max_faces)
        if faces > self.graph_faces:
            self.reset()
            self.graph_faces = faces
            self._mesh = _Graph(self._mp.solutions.face_mesh.FaceMesh(max_num_faces=faces, **self._args),
                                "multi_face_landmarks")
        height, width = rgb.shape[:2]
        meshes = []
        for face in self._mesh.run(rgb):
            meshes.append(_landmarks(face, np.float32) * np.array([width, height, width], dtype=np.float32))
        return meshes

    def close(self) -> None:
        self.reset()


@dataclass
class MeshSchedule:
    """When the whole-frame mesh runs: on every frame with a detection, except that after it
    found nothing (then it holds no face to track, and would only rerun its own detector on a
    frame much like the last) it is tried again only at a new face or every ``retry_every``
    frames. Small faces are what it misses; the crop mesh takes those (~1 ms a 720p frame
    saved on footage with small faces)."""

    retry_every: int = 5
    idle: int | None = None  # frames since it last ran and found nothing (None: it found a face)

    def should_run(self, new_face: bool) -> bool:
        return self.idle is None or new_face or self.idle + 1 >= self.retry_every

    def ran(self, found_any: bool) -> None:
        self.idle = None if found_any else 0

    def skipped(self) -> None:
        self.idle = 0 if self.idle is None else self.idle + 1

    def reset(self) -> None:
        self.idle = None


class CropMesher:
    """Face mesh on an upscaled square crop around one detection (see the module docstring)."""

    def __init__(self, crop_px: int = 256, context: float = 1.4, min_detection: float = 0.5):
        self.crop_px = int(crop_px)
        self.context = float(context)
        self._mesh = _Graph(_mediapipe().solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=min_detection
        ), "multi_face_landmarks")

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
        faces = self._mesh.run(crop)
        if not faces:
            return None
        points = _landmarks(faces[0], np.float64)
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


def mesh_box(mesh_px: np.ndarray) -> np.ndarray:
    """``(4,)`` tight xyxy box of a mesh's points."""
    return np.r_[mesh_px[:, :2].min(axis=0), mesh_px[:, :2].max(axis=0)].astype(np.float64)


def drop_duplicate_faces(detections: list[Detection], last_face_boxes: dict | None = None,
                         min_cover: float = 0.3) -> list[Detection]:
    """One face, one detection: after meshing, drop a detection without a mesh that is another
    detection's meshed face — its box covers at least ``min_cover`` of that face's mesh box, or
    its track's last mesh box (``last_face_boxes``: track id -> box) overlaps that one by IoU
    ≥ 0.5 — and the lower-scored of two whose mesh boxes overlap by IoU ≥ 0.5. (A small face can
    be found twice — a tight box from a crop and a loose one, several times its size and off
    centre, from a whole-frame model — with boxes too different for non-maximum suppression.)"""
    if len(detections) < 2:
        return detections
    last_face_boxes = last_face_boxes or {}
    meshed = [d for d in detections if d.mesh_px is not None]
    boxes = {id(d): mesh_box(d.mesh_px) for d in meshed}

    def covered(box: np.ndarray, face: np.ndarray) -> float:
        width = min(box[2], face[2]) - max(box[0], face[0])
        height = min(box[3], face[3]) - max(box[1], face[1])
        area = (face[2] - face[0]) * (face[3] - face[1])
        return max(width, 0.0) * max(height, 0.0) / area if area > 0 else 0.0

    def same_face(det: Detection, face: np.ndarray) -> bool:
        last = last_face_boxes.get(det.track_id)
        return covered(det.box_xyxy_px, face) >= min_cover or (
            last is not None and box_iou(last, face)[0, 0] >= 0.5)

    kept = [d for d in detections if d.mesh_px is not None
            or not any(same_face(d, boxes[id(m)]) for m in meshed)]
    out: list[Detection] = []
    for det in sorted(kept, key=lambda d: -d.score):
        if det.mesh_px is not None and any(
            o.mesh_px is not None and box_iou(boxes[id(det)], boxes[id(o)])[0, 0] >= 0.5 for o in out
        ):
            continue
        out.append(det)
    return [d for d in detections if any(d is o for o in out)]


def carry_detections(previous: list[Detection], meshes: list[np.ndarray], face_boxes: dict,
                     frame_wh: tuple[int, int], min_iou: float = 0.3) -> list[Detection] | None:
    """This frame's detections without running the detector, or None when that cannot be told.

    ``previous``: the last frame's detections, each meshed by the tracking mesh; ``meshes``:
    the tracking mesh's faces in this frame; ``face_boxes``: track id -> the face (mesh) box
    of its last frame. When the meshes pair one to one with the previous faces (greedily by
    the IoU of their mesh boxes, at least ``min_iou``), each previous detection is carried to
    its face's new mesh box: its box keeps its place and size relative to the face box
    (clipped to the frame, ``frame_wh``), its score stays, its model becomes :data:`CARRIED`.
    A face lost, or one more, gives None."""
    if not previous or len(meshes) != len(previous) or any(d.track_id not in face_boxes for d in previous):
        return None
    new = np.stack([mesh_box(m) for m in meshes])
    old = np.stack([np.asarray(face_boxes[d.track_id], dtype=np.float64) for d in previous])
    iou = box_iou(new, old)
    pairs: dict[int, int] = {}
    for flat in np.argsort(-iou, axis=None):
        m, p = np.unravel_index(flat, iou.shape)
        if iou[m, p] < min_iou:
            break
        if m not in pairs and p not in pairs.values():
            pairs[int(m)] = int(p)
    if len(pairs) != len(meshes):
        return None
    out = []
    for m, p in sorted(pairs.items(), key=lambda pair: pair[1]):
        old_size = np.maximum(old[p, 2:] - old[p, :2], 1e-6)
        new_size = new[m, 2:] - new[m, :2]
        relative = (previous[p].box_xyxy_px - np.tile(old[p, :2], 2)) / np.tile(old_size, 2)
        box = np.tile(new[m, :2], 2) + relative * np.tile(new_size, 2)
        box = np.clip(box, 0.0, np.tile(np.asarray(frame_wh, dtype=np.float64), 2))
        out.append(Detection(box, previous[p].score, CARRIED, mesh_px=meshes[m]))
    return out


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
