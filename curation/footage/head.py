"""A portrait re-rendered as a 3-D talking head under a known pose (DESIGN.md §5).

No real talking-face video reaches these machines, so ground-truth footage is rendered
from public-domain portraits (:mod:`.portraits`). The method is the one verified in
DESIGN.md §6: MediaPipe's 478-point face mesh of the portrait, triangulated together with
rings of vertices out to the portrait's border, re-rendered by piecewise-affine warps.

Model (units: millimetres in the camera frame; rotation convention of
:mod:`emoforge.labeling.rotation`):

- **Portrait camera.** The portrait is assumed taken by a pinhole camera with its
  principal point at the image centre, with the face ``PORTRAIT_DISTANCE_MM`` away and
  ``FACE_WIDTH_MM`` wide (landmarks 234-454, the face oval at the ears). Each landmark is
  back-projected along its pixel's ray to the depth MediaPipe's z gives it, so projecting
  the 3-D mesh with that camera returns the detected pixels exactly: rendering at the
  rest pose reproduces the portrait by construction.
- **Head frame.** ``rest_rotation = frontal_rotation(mesh)`` (:mod:`emoforge.labeling.face_model`);
  the head turns about a pivot ``PIVOT_BEHIND_OVAL_MM`` behind the centroid of the face
  oval along the head's z axis, roughly the centre of the head between the ears, so a
  yaw swings the face sideways as a real head does instead of spinning it in place.
- **Rings.** Outside the face oval, rings of vertices reach the portrait's border. Each
  follows the head with a weight falling from 1 at the oval to 0 at the border (cosine
  falloff), so hair, neck and background deform smoothly and the border stays put.
- **Articulation** acts in the head frame before rotation: ``jaw_open`` moves the lower
  lip, chin and jaw down and slightly back, ``blink`` lowers the upper eyelids onto the
  lower ones; a dark mouth cavity with a band of upper teeth fills the inner-lip contour.

Rendering: triangles are rasterised into an index map with ``cv2.fillConvexPoly``,
background rings first and face triangles far-to-near (painter's algorithm, back faces
culled), then each pixel's source coordinate comes from its triangle's affine map and one
``cv2.remap`` samples the portrait.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from emoforge.labeling.face_model import CHIN, FOREHEAD, LANDMARK_COUNT, frontal_rotation

FACE_WIDTH_MM = 150.0  # landmarks 234-454 on an adult face, ~ the bizygomatic breadth + skin
PORTRAIT_DISTANCE_MM = 1200.0  # a head-and-shoulders portrait: mild perspective, small off-axis angles
PIVOT_BEHIND_OVAL_MM = 60.0  # head centre behind the face oval's centroid
JAW_DROP_OF_FACE_HEIGHT = 0.25  # chin travel at jaw_open = 1, as a fraction of forehead-chin
FEATHER_OF_PORTRAIT = 0.02  # alpha ramps to 0 over this fraction of the portrait's short side
RING_STEPS = (0.12, 0.3, 0.55, 1.0)  # ring radii, from the oval (0) to the border (1)
RING_RAYS = 40  # rays per ring, plus one through each portrait corner

# MediaPipe face-mesh landmark groups (the annotations of MediaPipe's face mesh model).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
             54, 103, 67, 109)  # fmt: skip
FACE_LEFT_EDGE, FACE_RIGHT_EDGE = 234, 454  # image left / image right at zero pose
LIPS_UPPER = (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415)
LIPS_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
MOUTH_CORNERS = (61, 291, 78, 308)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87,
              178, 88, 95)  # fmt: skip
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
# Per eye: upper lid, lower lid (same order, corner to corner, corners left out), and two
# rings of lid skin above, each point above the matching lid point.
EYES = (
    {  # subject's right eye (image left)
        "upper": (246, 161, 160, 159, 158, 157, 173),
        "lower": (7, 163, 144, 145, 153, 154, 155),
        "upper1": (247, 30, 29, 27, 28, 56, 190),
        "upper2": (113, 225, 224, 223, 222, 221, 189),
    },
    {  # subject's left eye (image right)
        "upper": (466, 388, 387, 386, 385, 384, 398),
        "lower": (249, 390, 373, 374, 380, 381, 382),
        "upper1": (467, 260, 259, 257, 258, 286, 414),
        "upper2": (342, 445, 444, 443, 442, 441, 413),
    },
)
IRIS = tuple(range(468, 478))
CAVITY_RGB = np.array([52.0, 18.0, 22.0], dtype=np.float32)
TEETH_RGB = np.array([228.0, 222.0, 208.0], dtype=np.float32)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera with its principal point at the image centre ``(w/2, h/2)``."""

    width: int
    height: int
    focal_px: float

    def matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix ``K``."""
        return np.array(
            [[self.focal_px, 0.0, self.width / 2.0], [0.0, self.focal_px, self.height / 2.0], [0.0, 0.0, 1.0]]
        )

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera-frame points -> ``(..., 2)`` pixels: ``u = f x / z + w/2``."""
        points_cam = np.asarray(points_cam, dtype=np.float64)
        center = np.array([self.width / 2.0, self.height / 2.0])
        return self.focal_px * points_cam[..., :2] / points_cam[..., 2:3] + center

    def ray(self, pixels: np.ndarray) -> np.ndarray:
        """``(..., 2)`` pixels -> ``(..., 3)`` points on their rays at depth 1 (``K^-1 [u, v, 1]``)."""
        pixels = np.asarray(pixels, dtype=np.float64)
        center = np.array([self.width / 2.0, self.height / 2.0])
        xy = (pixels - center) / self.focal_px
        return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)


@dataclass(frozen=True)
class HeadRender:
    """One rendered frame of the head patch, with its truth."""

    rgb: np.ndarray  # (H, W, 3) uint8, the warped portrait patch (undefined where alpha == 0)
    alpha: np.ndarray  # (H, W) float32 in [0, 1], feathered at the patch's outer border
    landmarks_px: np.ndarray  # (478, 2) projected mesh points in the output frame
    landmarks_cam: np.ndarray  # (478, 3) mesh points in the camera frame (mm)
    box_xyxy_px: np.ndarray  # (4,) tight box of landmarks_px: the truth face box


def detect_face_mesh(image_rgb: np.ndarray) -> np.ndarray | None:
    """MediaPipe's 478-point face mesh of the most prominent face, normalised ``(478, 3)``, or None.

    Static-image mode with refined landmarks (the iris points), as the portrait is one
    still; x and y are fractions of the width and height, z is on x's scale.
    """
    from emoforge.errors import require

    mp = require("mediapipe", "faces")
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.5
    ) as face_mesh:
        result = face_mesh.process(np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8))
    if not result.multi_face_landmarks:
        return None
    landmarks = result.multi_face_landmarks[0].landmark
    return np.array([[point.x, point.y, point.z] for point in landmarks], dtype=np.float64)


def mesh_normalised_to_px(mesh_normalised: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised mesh -> camera-like pixel units (x, z times the width; y times the height)."""
    return np.asarray(mesh_normalised, dtype=np.float64) * np.array([width, height, width], dtype=np.float64)


def _smoothstep(edge0: float, edge1: float, values: np.ndarray) -> np.ndarray:
    t = np.clip((values - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _back_project_portrait(mesh_px: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Camera]:
    """Portrait landmarks in pixel units -> 3-D points in mm and the assumed portrait camera.

    MediaPipe's mesh is a weak-perspective shape seen along the line of sight to the
    face, not along the optical axis: for a face off the image centre the two differ by
    the off-axis angle (20° for the astronaut), and reading its z along the optical axis
    would shear the head by that much. So the shape (pixels and z, scaled to mm by the
    3-D face width 234-454) is first placed along the line of sight at
    ``PORTRAIT_DISTANCE_MM``; then each landmark is moved along its own pixel's ray onto
    the plane through it perpendicular to the line of sight, which keeps its depth along
    the line of sight and makes its projection the detected pixel exactly.
    """
    from emoforge.labeling.rotation import axis_angle_to_matrix

    width_px = np.linalg.norm(mesh_px[FACE_RIGHT_EDGE] - mesh_px[FACE_LEFT_EDGE])
    mm_per_px = FACE_WIDTH_MM / width_px
    camera = Camera(width, height, focal_px=PORTRAIT_DISTANCE_MM / mm_per_px)
    center_px = mesh_px.mean(axis=0)
    sight = camera.ray(center_px[:2])
    sight /= np.linalg.norm(sight)
    axis = np.cross([0.0, 0.0, 1.0], sight)
    to_sight = np.eye(3)
    if np.linalg.norm(axis) > 1e-12:
        to_sight = axis_angle_to_matrix(axis, np.rad2deg(np.arccos(np.clip(sight[2], -1.0, 1.0))))
    shape_mm = PORTRAIT_DISTANCE_MM * sight + (mesh_px - center_px) * mm_per_px @ to_sight.T
    rays = camera.ray(mesh_px[:, :2])
    return rays * ((shape_mm @ sight) / (rays @ sight))[:, None], camera


def _ring_pixels(
    oval_px: np.ndarray, oval_depth_mm: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rings of pixels between the face oval and the portrait border: pixels ``(K, 2)``, weights, depths ``(K,)``.

    Rays leave the oval's centroid at ``RING_RAYS`` even angles plus one through each
    corner (so the outer ring is exactly the portrait's rectangle); along each ray a ring
    sits at each fraction ``RING_STEPS`` of the way from the oval to the border. The follow
    weight is ``(1 + cos(pi * step)) / 2``: 1 at the oval, 0 at the border, flat at both ends.
    Each ray's vertices take the depth of the oval where the ray leaves it, so that the
    inner rings turn with the face's edge instead of folding under it (hair and ears sit
    about as deep as the face's sides).
    """
    center = oval_px.mean(axis=0)
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
    corner_angles = np.arctan2(corners[:, 1] - center[1], corners[:, 0] - center[0])
    angles = np.sort(np.concatenate([np.linspace(-np.pi, np.pi, RING_RAYS, endpoint=False), corner_angles]))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (A, 2)
    oval_offsets = oval_px - center
    oval_angles = np.arctan2(oval_offsets[:, 1], oval_offsets[:, 0])
    order = np.argsort(oval_angles)
    oval_radius = np.interp(angles, oval_angles[order], np.linalg.norm(oval_offsets, axis=1)[order], period=2 * np.pi)
    ray_depth_mm = np.interp(angles, oval_angles[order], oval_depth_mm[order], period=2 * np.pi)
    border_radius = _ray_to_rectangle(center, directions, width - 1.0, height - 1.0)
    steps = np.asarray(RING_STEPS)[:, None]  # (S, 1)
    radius = oval_radius + steps * (border_radius - oval_radius).clip(min=0.0)  # (S, A)
    pixels = center + radius[..., None] * directions  # (S, A, 2)
    pixels[-1] = np.clip(pixels[-1], 0.0, [width - 1.0, height - 1.0])
    weights = np.broadcast_to((1.0 + np.cos(np.pi * steps)) / 2.0, radius.shape)
    depths = np.broadcast_to(ray_depth_mm, radius.shape)
    return pixels.reshape(-1, 2), weights.reshape(-1).copy(), depths.reshape(-1).copy()


def _ray_to_rectangle(origin: np.ndarray, directions: np.ndarray, x_max: float, y_max: float) -> np.ndarray:
    """Distance along each unit direction from ``origin`` (inside) to the rectangle ``[0, x_max] x [0, y_max]``."""
    with np.errstate(divide="ignore"):
        to_x = np.where(directions[:, 0] > 0, (x_max - origin[0]) / directions[:, 0], -origin[0] / directions[:, 0])
        to_y = np.where(directions[:, 1] > 0, (y_max - origin[1]) / directions[:, 1], -origin[1] / directions[:, 1])
    return np.minimum(np.abs(to_x), np.abs(to_y))


def _triangulate(pixels: np.ndarray) -> np.ndarray:
    """Delaunay triangles of the portrait's vertices, all counter-clockwise in the image: ``(T, 3)``."""
    from scipy.spatial import Delaunay

    triangles = Delaunay(pixels).simplices.astype(np.int64)
    return triangles[_signed_area(pixels[triangles]) != 0.0]


def _signed_area(triangle_points: np.ndarray) -> np.ndarray:
    """Twice the signed area of ``(T, 3, 2)`` triangles (positive: counter-clockwise with y down)."""
    edge1 = triangle_points[:, 1] - triangle_points[:, 0]
    edge2 = triangle_points[:, 2] - triangle_points[:, 0]
    return edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]


def _jaw_weights(face_head_mm: np.ndarray) -> np.ndarray:
    """How far each face landmark moves with the jaw, 0..1 (1 = the chin's full travel).

    Below the mouth the weight rises over a short band to the lower lip's 0.7 and on to
    1 at the chin (a jaw hinged behind the face moves the chin most); the lips are
    assigned outright, as closed lips touch and no smooth field tells them apart. The
    weight fades towards the face's sides, where the jaw's angle barely moves.
    """
    x, y = face_head_mm[:, 0], face_head_mm[:, 1]
    mouth_y = face_head_mm[list(LIPS_INNER), 1].mean()
    chin_y = face_head_mm[CHIN, 1]
    lower_lip_y = face_head_mm[list(LIPS_LOWER), 1].mean()
    below = _smoothstep(mouth_y, lower_lip_y + 0.5 * (lower_lip_y - mouth_y), y)
    travel = 0.7 + 0.3 * np.clip((y - lower_lip_y) / (chin_y - lower_lip_y), 0.0, 1.0)
    weights = below * travel
    weights[list(LIPS_UPPER)] = 0.0
    weights[list(LIPS_LOWER)] = 0.7
    weights[list(MOUTH_CORNERS)] = 0.3
    half_width = 0.5 * abs(face_head_mm[FACE_RIGHT_EDGE, 0] - face_head_mm[FACE_LEFT_EDGE, 0])
    center_x = 0.5 * (face_head_mm[FACE_RIGHT_EDGE, 0] + face_head_mm[FACE_LEFT_EDGE, 0])
    lateral = 1.0 - 0.8 * _smoothstep(0.4, 1.0, np.abs(x - center_x) / half_width)
    return weights * lateral


class HeadModel:
    """A textured 3-D head built from one portrait; :meth:`render` draws it under any pose."""

    def __init__(self, image_rgb: np.ndarray, mesh_normalised: np.ndarray):
        height, width = image_rgb.shape[:2]
        self.image_rgb = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
        self.portrait_mesh_px = mesh_normalised_to_px(mesh_normalised, width, height)
        face_cam_mm, self.portrait_camera = _back_project_portrait(self.portrait_mesh_px, width, height)
        self.rest_rotation = frontal_rotation(face_cam_mm)
        oval_centroid = face_cam_mm[list(FACE_OVAL)].mean(axis=0)
        self.portrait_translation = oval_centroid + self.rest_rotation @ np.array([0.0, 0.0, PIVOT_BEHIND_OVAL_MM])
        oval = list(FACE_OVAL)
        ring_px, self._ring_weights, ring_depth_mm = _ring_pixels(
            self.portrait_mesh_px[oval, :2], face_cam_mm[oval, 2], width, height
        )
        ring_cam_mm = self.portrait_camera.ray(ring_px) * ring_depth_mm[:, None]
        self._source_px = np.concatenate([self.portrait_mesh_px[:, :2], ring_px]).astype(np.float32)
        cam_mm = np.concatenate([face_cam_mm, ring_cam_mm])
        self._vertices_head_mm = (cam_mm - self.portrait_translation) @ self.rest_rotation  # R^T (p - t)
        self._triangles = _triangulate(self._source_px.astype(np.float64))
        self._build_articulation()
        self._feather_u8 = _feather_mask(width, height, FEATHER_OF_PORTRAIT * min(width, height))

    @classmethod
    def from_portrait(cls, image_rgb: np.ndarray) -> HeadModel:
        """Run MediaPipe's face mesh once on the portrait and build the head; ValueError if no face."""
        mesh = detect_face_mesh(image_rgb)
        if mesh is None:
            raise ValueError("MediaPipe's face mesh found no face in the portrait")
        return cls(image_rgb, mesh)

    # -- articulation ---------------------------------------------------------------
    def _build_articulation(self) -> None:
        face = self._vertices_head_mm[:LANDMARK_COUNT]
        face_height_mm = np.linalg.norm(face[CHIN] - face[FOREHEAD])
        direction = np.array([0.0, 1.0, 0.25]) / np.hypot(1.0, 0.25)  # down, and back as a hinged jaw
        self._jaw_full_mm = (JAW_DROP_OF_FACE_HEIGHT * face_height_mm) * _jaw_weights(face)[:, None] * direction
        self._blink_full_mm = self._blink_displacements(face)
        self._teeth_drop_mm = 0.06 * face_height_mm

    @staticmethod
    def _blink_displacements(face_head_mm: np.ndarray) -> np.ndarray:
        """Face-landmark displacements of a full blink ``(478, 3)``: upper lids onto lower lids.

        The lid skin above follows partly (half, then a fifth), and the iris drops with the
        lid so that its small triangles collapse under the closed lid.
        """
        displacement = np.zeros_like(face_head_mm)
        iris_eye = np.argmin(
            [np.linalg.norm(face_head_mm[list(IRIS)] - face_head_mm[list(eye["upper"])].mean(0), axis=1) for eye in EYES],
            axis=0,
        )
        for eye_index, eye in enumerate(EYES):
            upper, lower = list(eye["upper"]), list(eye["lower"])
            lid_mm = face_head_mm[lower] - face_head_mm[upper]
            displacement[upper] = lid_mm
            displacement[list(eye["upper1"])] = 0.5 * lid_mm
            displacement[list(eye["upper2"])] = 0.2 * lid_mm
            iris = np.asarray(IRIS)[iris_eye == eye_index]
            displacement[iris, 1] = face_head_mm[lower, 1].mean() - face_head_mm[iris, 1]
        return displacement

    def _articulated_face_mm(self, jaw_open: float, blink: float) -> np.ndarray:
        face = self._vertices_head_mm[:LANDMARK_COUNT]
        return face + float(np.clip(jaw_open, 0, 1)) * self._jaw_full_mm + float(np.clip(blink, 0, 1)) * self._blink_full_mm

    # -- placement ------------------------------------------------------------------
    @property
    def portrait_face_center_px(self) -> np.ndarray:
        """Where the face centre (3-D centroid of the 478 landmarks) projects in the portrait."""
        center_cam = self.rest_rotation @ self._face_center_head_mm() + self.portrait_translation
        return self.portrait_camera.project(center_cam)

    @property
    def portrait_face_width_px(self) -> float:
        """Projected distance between landmarks 234 and 454 in the portrait."""
        edges = self.portrait_mesh_px[[FACE_LEFT_EDGE, FACE_RIGHT_EDGE], :2]
        return float(np.linalg.norm(edges[1] - edges[0]))

    def _face_center_head_mm(self) -> np.ndarray:
        return self._vertices_head_mm[:LANDMARK_COUNT].mean(axis=0)

    def rest_translation(self, camera: Camera, center_px: tuple[float, float], face_width_px: float) -> np.ndarray:
        """Translation ``t`` (mm) placing the face centre at ``center_px``, ``face_width_px`` wide, at the rest rotation.

        The face centre is put on ``center_px``'s ray, at the depth where the projected
        234-454 distance equals ``face_width_px`` (fixed-point iteration on the depth:
        projected width is inversely proportional to depth, to first order).
        """
        center_head = self._face_center_head_mm()
        edges_head = self._vertices_head_mm[[FACE_LEFT_EDGE, FACE_RIGHT_EDGE]]
        ray = camera.ray(np.asarray(center_px, dtype=np.float64))
        depth_mm = camera.focal_px * FACE_WIDTH_MM / face_width_px
        for _ in range(8):
            translation = depth_mm * ray - self.rest_rotation @ center_head
            edges_px = camera.project(edges_head @ self.rest_rotation.T + translation)
            depth_mm *= np.linalg.norm(edges_px[1] - edges_px[0]) / face_width_px
        return depth_mm * ray - self.rest_rotation @ center_head

    # -- rendering ------------------------------------------------------------------
    def render(
        self,
        camera: Camera,
        rotation: np.ndarray,
        translation: np.ndarray,
        jaw_open: float = 0.0,
        blink: float = 0.0,
    ) -> HeadRender:
        """Render the head with absolute ``rotation`` (head -> camera) and ``translation`` (mm, the pivot).

        ``jaw_open`` and ``blink`` are in [0, 1]. The rings move with the head by their
        follow weight and stay at the rest rotation (still at ``translation``) otherwise.
        """
        rotation = np.asarray(rotation, dtype=np.float64)
        translation = np.asarray(translation, dtype=np.float64)
        face_head = self._articulated_face_mm(jaw_open, blink)
        face_cam = face_head @ rotation.T + translation
        rings_head = self._vertices_head_mm[LANDMARK_COUNT:]
        rings_moved = camera.project(rings_head @ rotation.T + translation)
        rings_still = camera.project(rings_head @ self.rest_rotation.T + translation)
        weights = self._ring_weights[:, None]
        face_px = camera.project(face_cam)
        target_px = np.concatenate([face_px, weights * rings_moved + (1.0 - weights) * rings_still])
        order = self._draw_order(target_px, face_cam[:, 2])
        rgb, alpha = self._warp(camera, target_px, order)
        if jaw_open > 0.0:
            self._draw_mouth(rgb, camera, rotation, translation, face_head, face_px, jaw_open)
        box = np.concatenate([face_px.min(axis=0), face_px.max(axis=0)])
        return HeadRender(rgb=rgb, alpha=alpha, landmarks_px=face_px, landmarks_cam=face_cam, box_xyxy_px=box)

    def _draw_order(self, target_px: np.ndarray, face_depth_mm: np.ndarray) -> np.ndarray:
        """Triangle indices in drawing order: ring triangles outer to inner, then face far to near.

        Face triangles that turned their back to the camera (orientation flipped against
        the portrait's) are culled: at large yaw the far cheek folds behind the nose.
        """
        triangles = self._triangles
        is_face = (triangles < LANDMARK_COUNT).all(axis=1)
        facing = _signed_area(target_px[triangles]) > 0.0
        ring_follow = np.concatenate([np.ones(LANDMARK_COUNT), self._ring_weights])[triangles].mean(axis=1)
        rings = np.flatnonzero(~is_face)
        rings = rings[np.argsort(ring_follow[rings], kind="stable")]
        faces = np.flatnonzero(is_face & facing)
        faces = faces[np.argsort(-face_depth_mm[triangles[faces]].mean(axis=1), kind="stable")]
        return np.concatenate([rings, faces])

    def _warp(self, camera: Camera, target_px: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Piecewise-affine warp of the portrait onto the target vertices: ``(rgb, alpha)`` full frames."""
        import cv2

        rgb = np.zeros((camera.height, camera.width, 3), dtype=np.uint8)
        alpha = np.zeros((camera.height, camera.width), dtype=np.float32)
        x0, y0 = np.floor(target_px.min(axis=0)).astype(int).clip(0, [camera.width, camera.height])
        x1, y1 = (np.ceil(target_px.max(axis=0)).astype(int) + 1).clip(0, [camera.width, camera.height])
        if x1 <= x0 or y1 <= y0:
            return rgb, alpha
        # Triangle index map of the region of interest, 0 = no triangle; 4 bits of subpixel precision.
        index_map = np.zeros((y1 - y0, x1 - x0), dtype=np.int32)
        fixed_point = np.round((target_px - [x0, y0]) * 16.0).clip(-(2**26), 2**26).astype(np.int32)
        triangle_points = fixed_point[self._triangles]  # (T, 3, 2)
        for triangle in order.tolist():
            cv2.fillConvexPoly(index_map, triangle_points[triangle], triangle + 1, cv2.LINE_8, 4)
        # Source coordinates as complex numbers x + iy: three 8-byte gathers instead of six,
        # and the result's memory is exactly the (h, w, 2) float32 map cv2.remap takes.
        affine = _affine_table(target_px - [x0, y0], self._source_px, self._triangles)  # (T + 1, 3) complex64
        xs = np.arange(x1 - x0, dtype=np.float32)[None, :]
        ys = np.arange(y1 - y0, dtype=np.float32)[:, None]
        source_map = affine[:, 0].take(index_map) * xs
        source_map += affine[:, 1].take(index_map) * ys
        source_map += affine[:, 2].take(index_map)
        source_map = source_map.view(np.float32).reshape(y1 - y0, x1 - x0, 2)
        cv2.remap(self.image_rgb, source_map, None, cv2.INTER_LINEAR, dst=rgb[y0:y1, x0:x1], borderMode=cv2.BORDER_REPLICATE)
        coverage = cv2.remap(self._feather_u8, source_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        np.multiply(coverage, np.float32(1.0 / 255.0), out=alpha[y0:y1, x0:x1])
        return rgb, alpha

    def _draw_mouth(
        self,
        rgb: np.ndarray,
        camera: Camera,
        rotation: np.ndarray,
        translation: np.ndarray,
        face_head: np.ndarray,
        face_px: np.ndarray,
        jaw_open: float,
    ) -> None:
        """Paint the mouth cavity inside the inner-lip contour, with a band of upper teeth.

        Opacity ramps in over the first 15 % of ``jaw_open`` so that a barely open jaw
        does not paint over lips that the portrait shows closed.
        """
        cavity_px = face_px[list(LIPS_INNER)]
        x0, y0 = np.floor(cavity_px.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(cavity_px.max(axis=0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, camera.width), min(y1, camera.height)
        if x1 <= x0 or y1 <= y0:
            return
        upper_head = face_head[list(LIPS_UPPER_INNER)]
        teeth_head = np.concatenate([upper_head, (upper_head + [0.0, self._teeth_drop_mm, 0.0])[::-1]])
        teeth_px = camera.project(teeth_head @ rotation.T + translation)
        cavity = _polygon_coverage(cavity_px - [x0, y0], (y1 - y0, x1 - x0))
        teeth = _polygon_coverage(teeth_px - [x0, y0], (y1 - y0, x1 - x0)) * cavity
        opacity = min(1.0, jaw_open / 0.15)
        shade = np.linspace(0.75, 1.0, y1 - y0, dtype=np.float32)[:, None, None]  # teeth lit from above
        patch = rgb[y0:y1, x0:x1].astype(np.float32)
        patch += (opacity * cavity)[..., None] * (CAVITY_RGB - patch)
        patch += (opacity * teeth)[..., None] * (TEETH_RGB * shade[::-1] - patch)
        rgb[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _feather_mask(width: int, height: int, feather_px: float) -> np.ndarray:
    """uint8 ``(h, w)`` coverage of the portrait: 255 inside, ramping to 0 at its border over ``feather_px``.

    Warped with the same map as the colours, it gives the patch's alpha in one remap.
    """
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    inside_px = np.minimum(np.minimum(xs, width - 1.0 - xs), np.minimum(ys, height - 1.0 - ys))
    return np.round(255.0 * np.clip(inside_px / feather_px, 0.0, 1.0)).astype(np.uint8)


def _polygon_coverage(polygon_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one polygon over an image of ``shape``: float32 ``(h, w)``."""
    import cv2

    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(polygon_px * 16.0).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0


def _affine_table(target_px: np.ndarray, source_px: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps target pixel -> source pixel, row ``k + 1`` for triangle ``k``: ``(T + 1, 3)``.

    Each row holds the complex coefficients ``(a, b, c)`` of ``source = a x + b y + c`` with
    ``source = sx + i sy``. Row 0 (pixels no triangle covers) maps outside the portrait.
    For target corners ``d_i`` and source corners ``s_i``: ``A = [s1-s0, s2-s0] [d1-d0, d2-d0]^-1``
    and ``b = s0 - A d0``; degenerate (zero-area) targets map to their source centroid.
    """
    target = target_px[triangles]  # (T, 3, 2)
    source = source_px[triangles].astype(np.float64)
    target_edges = np.stack([target[:, 1] - target[:, 0], target[:, 2] - target[:, 0]], axis=-1)  # (T, 2, 2) columns
    source_edges = np.stack([source[:, 1] - source[:, 0], source[:, 2] - source[:, 0]], axis=-1)
    det = target_edges[:, 0, 0] * target_edges[:, 1, 1] - target_edges[:, 0, 1] * target_edges[:, 1, 0]
    degenerate = np.abs(det) < 1e-9
    safe_det = np.where(degenerate, 1.0, det)
    inverse = np.stack(
        [
            np.stack([target_edges[:, 1, 1], -target_edges[:, 0, 1]], axis=-1),
            np.stack([-target_edges[:, 1, 0], target_edges[:, 0, 0]], axis=-1),
        ],
        axis=-2,
    ) / safe_det[:, None, None]
    linear = source_edges @ inverse  # (T, 2, 2)
    linear[degenerate] = 0.0
    offset = source[:, 0] - np.einsum("tij,tj->ti", linear, target[:, 0])
    offset[degenerate] = source[degenerate].mean(axis=1)
    table = np.empty((len(triangles) + 1, 3), dtype=np.complex64)
    table[0] = [0.0, 0.0, -10.0 - 10.0j]  # far enough outside for bilinear sampling to read only the border
    table[1:, 0] = linear[:, 0, 0] + 1j * linear[:, 1, 0]
    table[1:, 1] = linear[:, 0, 1] + 1j * linear[:, 1, 1]
    table[1:, 2] = offset[:, 0] + 1j * offset[:, 1]
    return table


@functools.lru_cache(maxsize=None)
def head_for(portrait_name: str) -> HeadModel:
    """The head of a registered portrait (:mod:`.portraits`), built once per process."""
    from emoforge.curation.footage.portraits import load_portrait

    return HeadModel.from_portrait(load_portrait(portrait_name))
