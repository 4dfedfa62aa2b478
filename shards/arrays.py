"""Byte-deterministic ``.npy``/``.npz`` encoding (NumPy's own ``savez`` stamps the current time).

The files are ordinary NumPy files: ``np.load`` and WebDataset's default decoders read them.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = True) -> bytes:
    """Arrays in name order, fixed timestamps: the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, npy_bytes(np.asarray(arrays[name])))
    return buffer.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def load_npz(data: bytes, names=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (only ``names`` when given: the others are not decompressed)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in (archive.files if names is None else names)}
