"""Face geometry: the mirror table and the symmetry-plane head rotation (labeling/face_model.py)."""

import subprocess
import sys

import numpy as np
import pytest

from emoforge.labeling.face_model import (
    CHIN,
    FOREHEAD,
    derive_mirror_pairs,
    frontal_rotation,
    mirror_index,
    mirror_pairs,
)
from emoforge.labeling.rotation import euler_to_matrix, geodesic_angle_deg


def test_mirror_table_is_an_involution_with_a_midline():
    mirror = mirror_index()
    assert np.array_equal(mirror[mirror], np.arange(478))
    midline = np.flatnonzero(mirror == np.arange(478))
    assert {FOREHEAD, CHIN, 1, 4}.issubset(midline)  # forehead, chin, nose tip
    assert mirror[33] == 263 and mirror[468] == 473  # outer eye corners, iris centres
    assert mirror_pairs().shape == (225, 2) and len(midline) == 28


def test_import_stays_numpy_only():
    code = "import sys, emoforge.labeling.face_model; print(sorted({m.split('.')[0] for m in sys.modules} & {'cv2', 'mediapipe', 'scipy', 'torch'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def portrait_meshes_px():
    head = pytest.importorskip("emoforge.curation.footage.head")
    pytest.importorskip("mediapipe")
    return {name: head.head_for(name).portrait_mesh_px for name in ("astronaut", "grace_hopper")}


def test_mirror_table_is_derived_from_both_frontal_portraits(portrait_meshes_px):
    for name, mesh in portrait_meshes_px.items():
        assert np.array_equal(derive_mirror_pairs(mesh), mirror_index()), name
        left, right = mirror_pairs().T
        assert (mesh[left, 0] > mesh[right, 0]).all(), name  # column 0 is on the image's right


def _symmetric_frontal_mesh(mesh_px: np.ndarray) -> np.ndarray:
    """The mesh in its own head frame, made exactly mirror-symmetric about x = 0."""
    head_frame = (mesh_px - mesh_px.mean(axis=0)) @ frontal_rotation(mesh_px)
    reflected = head_frame[mirror_index()] * [-1.0, 1.0, 1.0]
    return (head_frame + reflected) / 2.0


def test_frontal_rotation_of_a_symmetric_frontal_mesh_is_identity(portrait_meshes_px):
    for mesh in portrait_meshes_px.values():
        symmetric = _symmetric_frontal_mesh(mesh)
        assert geodesic_angle_deg(frontal_rotation(symmetric), np.eye(3)) < 0.5
        nose_tip = symmetric[1] - symmetric.mean(axis=0)
        assert nose_tip[2] < 0  # the nose points at the camera (-z) at zero pose


def test_frontal_rotation_recovers_known_rotations(portrait_meshes_px):
    rng = np.random.default_rng(0)
    angles = rng.uniform(-40, 40, size=(16, 3))
    truth = euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])  # (16, 3, 3)
    for mesh in portrait_meshes_px.values():
        symmetric = _symmetric_frontal_mesh(mesh) + [0.0, 0.0, 600.0]
        rotated = np.einsum("fij,nj->fni", truth, symmetric)  # (16, 478, 3)
        stacked = frontal_rotation(rotated)
        assert stacked.shape == (16, 3, 3)
        assert geodesic_angle_deg(stacked, truth).max() < 0.5
        # A real (asymmetric) mesh: the estimate turns exactly with the mesh.
        real = np.einsum("fij,nj->fni", truth, mesh)
        expected = truth @ frontal_rotation(mesh)
        assert geodesic_angle_deg(frontal_rotation(real), expected).max() < 0.5
        assert np.allclose(frontal_rotation(real[3]), frontal_rotation(real)[3])


def test_frontal_rotation_is_a_proper_rotation():
    rng = np.random.default_rng(1)
    rotation = frontal_rotation(rng.normal(size=(4, 478, 3)))
    assert np.allclose(rotation @ np.swapaxes(rotation, -1, -2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rotation), 1.0)
    with pytest.raises(ValueError):
        frontal_rotation(np.zeros((468, 3)))
