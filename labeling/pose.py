"""6-DoF head pose per frame from the MediaPipe face mesh (paper §4.1: "extracting the 6-DoF
head pose for each frame using facial landmarks").

Convention: :mod:`emoforge.labeling.rotation` (OpenCV camera frame, x right, y down, z
forward; ``R`` maps head to camera; intrinsic yaw-pitch-roll in degrees). "Frontal"
(``R = I``) is defined by the face's own symmetry plane,
:func:`emoforge.labeling.face_model.frontal_rotation` — the same definition the
ground-truth footage uses. Translation ``t`` is the head model's origin (the centroid
of its 478 landmarks) in the camera frame, in millimetres, with the model scaled to
a 63 mm distance between the eye centres (the adult mean), so depth is only as right
as that assumption.

Intrinsics: a pinhole camera with the principal point at the image centre
``(cx, cy) = (W / 2, H / 2)`` — x with the width, y with the height, the mistake peers
make is swapping them — and focal length ``focal_px`` (default ``max(W, H)``, a normal
lens whose longer side spans ~53°; internet video has no calibration).

Method (``method="pnp"``, the default), per face track:

1. *Lift* (``method="lift"`` stops here): :func:`lift_mesh` puts MediaPipe's mesh (x, y
   in pixels, z a depth offset along the line of sight on x's scale) into the camera
   frame through ``K⁻¹`` with the principal point above — the same lift the footage
   generator applies to its portraits — and ``frontal_rotation`` of it is the pose.
2. *Subject model*: each frame's lifted mesh is turned back to frontal by its rotation,
   centred, scaled to the 63 mm eye distance and averaged over the track's *neutral,
   near-frontal* frames (:func:`model_frames`: mouth opening at most the track's median,
   and of those the half nearest the camera); the mean is re-frontalised so its own
   ``frontal_rotation`` is exactly ``I``. The model defines frontal, so it is the
   subject's resting face: an open mouth tilts MediaPipe's mesh midline (on rendered
   heads whose face moves nothing above the upper lip, pitch read 1.8-5.6° lower per unit
   of jaw opening), and a talking track averaged over every frame sat 1-3° off in pitch;
   turned meshes carry MediaPipe's distortions of a turned face into the mean.
3. *PnP*: ``cv2.solvePnP`` (Levenberg-Marquardt from step 1) of the model's rigid
   landmarks — the upper face; the jaw, lips and chin move with speech and would tilt a
   per-frame symmetry estimate — against the frame's 2-D points with the intrinsics
   above. Because the model's frontal rotation is ``I``, the PnP rotation is the head
   rotation in the symmetry-plane definition; only MediaPipe's x, y (its most reliable
   outputs) and true perspective enter the final fit.

4. *Flow steps* (when the caller tracked the face's pixels, :mod:`emoforge.labeling.flow`):
   the rotation from frame ``f-1`` to ``f`` is the rigid motion of the same model from frame
   ``f-1``'s pose to where the image motion carried its rigid landmarks (:func:`flow_steps`). It
   measures the turn between frames from the pixels, not from two independently regressed
   meshes, so velocity is neither compressed nor jittered by MediaPipe.

No smoothing happens here; see :mod:`emoforge.labeling.velocity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoforge.labeling.face_model import frontal_rotation
from emoforge.labeling.rotation import matrix_to_euler

EYE_DISTANCE_MM = 63.0
LEFT_EYE = (362, 263)  # subject's left eye corners (image right at zero pose)
RIGHT_EYE = (33, 133)
CHIN = 152
UPPER_LIP = 0


@dataclass(frozen=True)
class Intrinsics:
    focal_px: float
    cx_px: float
    cy_px: float

    @classmethod
    def for_frame(cls, width_px: int, height_px: int, focal_px: float | None = None) -> "Intrinsics":
        """Principal point at the centre: ``cx = W / 2`` (x, columns), ``cy = H / 2`` (y, rows)."""
        return cls(float(focal_px or max(width_px, height_px)), width_px / 2.0, height_px / 2.0)

    def matrix(self) -> np.ndarray:
        return np.array([[self.focal_px, 0, self.cx_px], [0, self.focal_px, self.cy_px], [0, 0, 1]], dtype=np.float64)


@dataclass
class PoseTrack:
    """Pose of every frame of one face track (``F`` frames; rows without a mesh are NaN)."""

    rotation: np.ndarray  # (F, 3, 3) head -> camera
    translation_mm: np.ndarray  # (F, 3) camera frame
    euler_deg: np.ndarray  # (F, 3) yaw, pitch, roll
    reprojection_px: np.ndarray  # (F,) RMS reprojection error of the rigid landmarks (NaN for "lift")
    valid: np.ndarray  # (F,) bool
    step_rotation: np.ndarray | None = None  # (F, 3, 3) frame f-1 -> f from the image flow (NaN: none)


def _eye_distance(mesh: np.ndarray) -> np.ndarray:
    left = mesh[..., list(LEFT_EYE), :].mean(axis=-2)
    right = mesh[..., list(RIGHT_EYE), :].mean(axis=-2)
    return np.linalg.norm(left - right, axis=-1)


def lift_mesh(meshes_px: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """MediaPipe pixel meshes ``(..., 478, 3)`` -> the face in the camera frame, ``(..., 478, 3)``.

    MediaPipe's mesh is a weak-perspective shape seen along the line of sight ``s`` to the
    face (the ray ``r_c = K⁻¹ (c, 1)`` through the mesh centre ``c``), with z its depth
    offset along that line on the scale of x. Measured in pixels at the face's distance,
    the centre is at distance ``L = f |r_c|``; each landmark is put on its own pixel's ray
    ``r_i = K⁻¹ (u_i, v_i, 1)`` at depth ``L + z_i`` along the sight line:
    ``P_i = r_i (L + z_i) / (r_i · s)``. Its projection is the detected pixel exactly, and
    the face keeps MediaPipe's relief. This is how the footage generator lifts portraits.
    """
    meshes = np.asarray(meshes_px, dtype=np.float64)
    focal = intrinsics.focal_px
    rays = np.stack(
        [(meshes[..., 0] - intrinsics.cx_px) / focal, (meshes[..., 1] - intrinsics.cy_px) / focal,
         np.ones(meshes.shape[:-1])],
        axis=-1,
    )  # (..., 478, 3)
    centre = rays.mean(axis=-2, keepdims=True)
    sight = centre / np.linalg.norm(centre, axis=-1, keepdims=True)
    distance = focal * np.linalg.norm(centre, axis=-1)  # (..., 1)
    depth = distance + meshes[..., 2] - meshes[..., 2].mean(axis=-1, keepdims=True)
    return rays * (depth / (rays * sight).sum(axis=-1))[..., None]


def rigid_landmarks(model_mm: np.ndarray) -> np.ndarray:
    """Indices of the landmarks above the upper lip of a frontal model (they do not move with speech)."""
    cutoff = model_mm[UPPER_LIP, 1]  # y grows down the face
    return np.flatnonzero(model_mm[:, 1] < cutoff - 0.02 * (model_mm[CHIN, 1] - cutoff))


def subject_model(lifted: np.ndarray, rotations: np.ndarray, depth_scale: float = 1.0) -> np.ndarray:
    """Step 2: the track's mean frontal face ``(478, 3)`` in mm (eye distance 63 mm), frontal_rotation = I.

    Each lifted mesh is turned back to frontal by its own rotation and the frames are
    averaged; ``depth_scale`` stretches the depth axis (1: MediaPipe's z taken at the
    scale of x; fitting it per track by reprojection error was tried and made yaw worse)."""
    centred = lifted - lifted.mean(axis=-2, keepdims=True)
    frontal = centred @ rotations  # R^T x for row vectors: (F, 478, 3)
    frontal *= (EYE_DISTANCE_MM / _eye_distance(frontal))[:, None, None]
    model = frontal.mean(axis=0) * np.array([1.0, 1.0, depth_scale])
    model = model @ frontal_rotation(model)  # exactly frontal
    return model - model.mean(axis=0)


def model_frames(meshes_px: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``(F,)`` bool: the frames the subject model is averaged over — mouth opening at most the
    track's median, and of those the half whose rotation is nearest ``I`` (facing the camera).

    ``meshes_px`` ``(F, 478, 3)`` and ``rotations`` ``(F, 3, 3)`` (the lift estimates) have no NaN rows.
    At least one frame is chosen."""
    from emoforge.labeling.sync import mouth_opening

    opening = mouth_opening(meshes_px)
    chosen = opening <= np.median(opening)
    cos_angle = np.clip((np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    chosen &= cos_angle >= np.median(cos_angle[chosen])  # angle from I at most the median
    return chosen


def estimate_pose_track(
    meshes_px: np.ndarray, intrinsics: Intrinsics, method: str = "pnp", flow_px: np.ndarray | None = None
) -> PoseTrack:
    """Pose of a track's ``(F, 478, 3)`` pixel meshes (NaN rows = no mesh) by ``method`` "pnp" or "lift".

    ``flow_px``: optional ``(F, 478, 2)`` image motion of the landmarks from the previous
    row's frame to this row's (NaN: not tracked; rows must be consecutive frames) — then
    :attr:`PoseTrack.step_rotation` holds :func:`flow_steps`."""
    if method not in ("pnp", "lift"):
        raise ValueError(f"unknown pose method {method!r} (pnp, lift)")
    meshes = np.asarray(meshes_px, dtype=np.float64)
    n = len(meshes)
    valid = np.all(np.isfinite(meshes), axis=(1, 2)) if n else np.zeros(0, bool)
    rotation = np.full((n, 3, 3), np.nan)
    translation = np.full((n, 3), np.nan)
    reprojection = np.full(n, np.nan)
    steps = None if flow_px is None else np.full((n, 3, 3), np.nan)
    if valid.any():
        lifted = lift_mesh(meshes[valid], intrinsics)
        rotation[valid] = frontal_rotation(lifted)
        model = None
        if method == "pnp" or flow_px is not None:
            chosen = model_frames(meshes[valid], rotation[valid])
            model = subject_model(lifted[chosen], rotation[valid][chosen])
        if method == "pnp":
            rotation[valid], translation[valid], reprojection[valid] = _pnp(
                meshes[valid], model, rotation[valid], intrinsics
            )
        else:
            translation[valid] = _translation_from_scale(meshes[valid], intrinsics)
        if flow_px is not None:
            steps = flow_steps(model, rotation, translation, np.asarray(flow_px, dtype=np.float64), intrinsics)
    euler = np.full((n, 3), np.nan)
    euler[valid] = matrix_to_euler(rotation[valid])
    return PoseTrack(rotation, translation, euler, reprojection, valid, steps)


def flow_steps(model_mm: np.ndarray, rotations: np.ndarray, translations_mm: np.ndarray, flow_px: np.ndarray,
               intrinsics: Intrinsics, min_points: int = 12, iterations: int = 3) -> np.ndarray:
    """Step 4: ``(F, 3, 3)`` rotation from row ``f-1`` to row ``f`` (``R_f ≈ step_f R_(f-1)``), NaN
    where row ``f-1`` has no pose or fewer than ``min_points`` rigid landmarks were tracked.

    The model's rigid landmarks are projected with row ``f-1``'s pose and moved by the flow;
    the rigid motion that carries them there (``R = step R_(f-1)``, ``t = t_(f-1) + τ``) is
    fitted by Gauss-Newton on the reprojection error (``step`` updated by ``exp([δω]×)`` on the
    left), all frames at once: the motion between frames is small, ``iterations`` steps converge. The projected
    model rather than MediaPipe's landmarks anchors the flow, so a landmark's regression error
    in frame ``f-1`` cancels from the step."""
    from emoforge.labeling.rotation import axis_angle_to_matrix

    rigid = rigid_landmarks(model_mm)
    focal, centre = intrinsics.focal_px, np.array([intrinsics.cx_px, intrinsics.cy_px])
    steps = np.full((len(rotations), 3, 3), np.nan)
    if len(rotations) < 2:
        return steps
    moved = flow_px[1:, rigid]  # (F-1, K, 2)
    weight = np.isfinite(moved).all(axis=-1)  # (F-1, K)
    anchor_r, anchor_t = rotations[:-1], translations_mm[:-1]
    usable = np.isfinite(anchor_r).all(axis=(1, 2)) & np.isfinite(anchor_t).all(axis=1) & (weight.sum(1) >= min_points)
    if not usable.any():
        return steps
    index = np.flatnonzero(usable)
    # each frame's tracked landmarks first, padded (weight 0) to the most any frame has
    order = np.argsort(~weight[index], axis=1, kind="stable")[:, : int(weight[index].sum(axis=1).max())]
    weight = np.take_along_axis(weight[index], order, axis=1).astype(np.float64)  # (F', K)
    moved = np.nan_to_num(np.take_along_axis(moved[index], order[..., None], axis=1))  # (F', K, 2)
    anchor_r, anchor_t = anchor_r[index], anchor_t[index]
    rotated = np.einsum("fij,fkj->fki", anchor_r, model_mm[rigid][order])  # R_(f-1) X: (F', K, 3)

    def project(points):
        return focal * points[..., :2] / points[..., 2:] + centre

    def exp(omega):  # (F', 3) rotation vectors -> (F', 3, 3)
        angle = np.linalg.norm(omega, axis=1, keepdims=True)
        return axis_angle_to_matrix(np.where(angle > 0, omega, [1.0, 0.0, 0.0]), np.rad2deg(angle[:, 0]))

    target = project(rotated + anchor_t[:, None, :]) + moved  # (F', K, 2)
    turn, tau = np.broadcast_to(np.eye(3), (len(index), 3, 3)).copy(), np.zeros((len(index), 3))
    for _ in range(iterations):
        arm = np.einsum("fij,fkj->fki", turn, rotated)  # turn R_(f-1) X
        points = arm + (anchor_t + tau)[:, None, :]
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        residual = project(points) - target  # (F', K, 2)
        d_point = np.zeros(points.shape[:2] + (2, 3))  # d(projection)/d(point)
        d_point[..., 0, 0] = d_point[..., 1, 1] = focal / z
        d_point[..., 0, 2], d_point[..., 1, 2] = -focal * x / z**2, -focal * y / z**2
        cross = np.zeros(points.shape[:2] + (3, 3))  # d(point)/dω = -[arm]×
        cross[..., 0, 1], cross[..., 0, 2] = arm[..., 2], -arm[..., 1]
        cross[..., 1, 0], cross[..., 1, 2] = -arm[..., 2], arm[..., 0]
        cross[..., 2, 0], cross[..., 2, 1] = arm[..., 1], -arm[..., 0]
        jacobian = np.concatenate([d_point @ cross, d_point], axis=-1)  # (F', K, 2, 6)
        jacobian = (jacobian * weight[..., None, None]).reshape(len(index), -1, 6)  # (F', 2K, 6)
        hessian = np.swapaxes(jacobian, 1, 2) @ jacobian  # weights are 0 or 1
        gradient = (np.swapaxes(jacobian, 1, 2) @ residual.reshape(len(index), -1, 1))[..., 0]
        delta = -np.linalg.solve(hessian, gradient[..., None])[..., 0]
        turn, tau = exp(delta[:, :3]) @ turn, tau + delta[:, 3:]
    steps[index + 1] = turn
    return steps


def _translation_from_scale(meshes: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Centroid depth from the eye distance in pixels; x and y back-projected through K."""
    centre = meshes.mean(axis=1)
    depth = intrinsics.focal_px * EYE_DISTANCE_MM / _eye_distance(meshes)
    return np.stack(
        [
            (centre[:, 0] - intrinsics.cx_px) * depth / intrinsics.focal_px,
            (centre[:, 1] - intrinsics.cy_px) * depth / intrinsics.focal_px,
            depth,
        ],
        axis=1,
    )


def _solve(model: np.ndarray, rigid: np.ndarray, image_points: np.ndarray, rotation: np.ndarray,
           translation: np.ndarray, camera: np.ndarray):
    """One Levenberg-Marquardt PnP from an initial pose: ``(ok, R, t, RMS reprojection px)``."""
    import cv2

    object_points = np.ascontiguousarray(model[rigid])
    rvec, _ = cv2.Rodrigues(rotation)
    tvec = translation.reshape(3, 1).copy()
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    projected, _ = cv2.projectPoints(object_points, rvec, tvec, camera, None)
    error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image_points) ** 2, axis=1))))
    return ok, cv2.Rodrigues(rvec)[0], tvec.ravel(), error


def _pnp(meshes: np.ndarray, model: np.ndarray, initial: np.ndarray, intrinsics: Intrinsics):
    guess_t = _translation_from_scale(meshes, intrinsics)
    rigid = rigid_landmarks(model)
    camera = intrinsics.matrix()
    rotations = np.empty_like(initial)
    translations = np.empty((len(meshes), 3))
    errors = np.empty(len(meshes))
    for i, mesh in enumerate(meshes):
        ok, rotation, translation, error = _solve(
            model, rigid, np.ascontiguousarray(mesh[rigid, :2]), initial[i], guess_t[i], camera
        )
        rotations[i] = rotation if ok else initial[i]
        translations[i] = translation if ok else guess_t[i]
        errors[i] = error
    return rotations, translations, errors
