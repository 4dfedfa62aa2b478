"""Byte-deterministic ``.npy``/``.npz`` encoding (NumPy's own ``savez`` stamps the current time).

The files are ordinary NumPy files: ``np.load`` and WebDataset's default decoders read them.
"""

from __future__ import annotations

import io

import numpy as np

from emoforge.files import npy_bytes  # noqa: F401 (the shard members' encoding)
from emoforge.files import npz_bytes as _npz_bytes


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = True) -> bytes:
    """Arrays in name order, fixed timestamps: the same arrays always give the same bytes."""
    return _npz_bytes(arrays, level=None if compress else 0)


def load_npy(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def load_npz(data: bytes, names=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (only ``names`` when given: the others are not decompressed)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in (archive.files if names is None else names)}
