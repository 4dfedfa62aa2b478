"""Head rotations: the one convention every part of emoforge uses.

Camera frame (OpenCV): x to the image's right, y down, z forward from the camera
into the scene. A head pose is a rotation matrix ``R`` (head frame -> camera frame)
and a translation ``t`` (the head centre in the camera frame). In the head frame at
zero pose the face looks at the camera (its nose points along -z).

Euler angles, in degrees, are intrinsic yaw-pitch-roll:
``R = R_y(yaw_deg) @ R_x(pitch_deg) @ R_z(roll_deg)``, each a right-handed rotation
about the camera axis. Their visible effect, from zero pose:

- positive yaw turns the nose toward the image's left (the subject's right);
- positive pitch tilts the nose down (the subject looks down);
- positive roll turns the head clockwise as seen in the image.

Rotation velocity is the geodesic angle between consecutive rotations (paper §4.1:
"the rotational degrees between frames"), computed in the stable atan2 form, which
keeps full precision for the small angles between video frames where ``arccos`` of
``(trace - 1) / 2`` loses it.
"""

from __future__ import annotations

import numpy as np


def _axis_rotations(angles_rad: np.ndarray, axis: int) -> np.ndarray:
    """Rotations about one camera axis, for an array of angles: shape ``(..., 3, 3)``."""
    cos, sin = np.cos(angles_rad), np.sin(angles_rad)
    rot = np.zeros(np.shape(angles_rad) + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns
    rot[..., axis, axis] = 1.0
    rot[..., i, i] = cos
    rot[..., j, j] = cos
    rot[..., i, j] = -sin
    rot[..., j, i] = sin
    return rot


def euler_to_matrix(yaw_deg, pitch_deg, roll_deg) -> np.ndarray:
    """``R_y(yaw) @ R_x(pitch) @ R_z(roll)``; array inputs give ``(..., 3, 3)``."""
    yaw, pitch, roll = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (yaw_deg, pitch_deg, roll_deg))
    return _axis_rotations(yaw, 1) @ _axis_rotations(pitch, 0) @ _axis_rotations(roll, 2)


def matrix_to_euler(rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`: ``(..., 3, 3)`` -> ``(..., 3)`` as (yaw, pitch, roll) degrees.

    With ``R = R_y(a) R_x(b) R_z(c)``: ``R[1,2] = -sin b``, ``R[0,2] / R[2,2] = tan a``
    and ``R[1,0] / R[1,1] = tan c`` (valid while |pitch| < 90°).
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    pitch = np.arcsin(np.clip(-rotation[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(rotation[..., 0, 2], rotation[..., 2, 2])
    roll = np.arctan2(rotation[..., 1, 0], rotation[..., 1, 1])
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def geodesic_angle_deg(rot_a: np.ndarray, rot_b: np.ndarray) -> np.ndarray:
    """Angle of the rotation taking ``rot_a`` to ``rot_b``, in degrees, for ``(..., 3, 3)`` stacks.

    For ``D = rot_a^T rot_b``: ``cos θ = (tr D - 1) / 2`` and ``sin θ = |vee(D - D^T)| / 2``;
    ``θ = atan2(sin θ, cos θ)`` is accurate for every angle in [0°, 180°].
    """
    delta = np.swapaxes(np.asarray(rot_a, dtype=np.float64), -1, -2) @ np.asarray(rot_b, dtype=np.float64)
    skew = np.stack(
        [
            delta[..., 2, 1] - delta[..., 1, 2],
            delta[..., 0, 2] - delta[..., 2, 0],
            delta[..., 1, 0] - delta[..., 0, 1],
        ],
        axis=-1,
    )
    sin_theta = np.linalg.norm(skew, axis=-1) / 2.0
    cos_theta = (np.trace(delta, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arctan2(sin_theta, cos_theta))


def rotation_velocity_deg_per_frame(rotations: np.ndarray) -> np.ndarray:
    """Per-frame rotation velocity ``w^f`` for a ``(F, 3, 3)`` track: shape ``(F,)``.

    ``w^f`` is the angle between frames ``f-1`` and ``f``; the first frame copies the
    second's value (a track of one frame has velocity 0).
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    if len(rotations) < 2:
        return np.zeros(len(rotations))
    steps = geodesic_angle_deg(rotations[:-1], rotations[1:])
    return np.concatenate([steps[:1], steps])


def axis_angle_to_matrix(axis: np.ndarray, angle_deg) -> np.ndarray:
    """Rodrigues' formula for unit ``axis`` ``(..., 3)`` and angle in degrees: ``(..., 3, 3)``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    theta = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))[..., None, None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), cross.shape)
    return eye + np.sin(theta) * cross + (1.0 - np.cos(theta)) * (cross @ cross)
