"""File helpers every area shares: content hashes, atomic writes, quick ``.npz`` archives.

An atomic write goes to a temporary name beside the target (``.<name>.<pid>.partial``)
and is renamed into place, so a reader never sees half a file and a crash leaves only
a ``*.partial`` that the next run removes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path


def file_sha256(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomic(path, data: bytes) -> Path:
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, document, **dumps_options) -> Path:
    return write_text_atomic(path, json.dumps(document, **dumps_options) + "\n")


def npz_bytes(arrays: dict, level: int = 1) -> bytes:
    """The arrays as an ``.npz`` archive (``np.load`` reads it), deflated at zlib ``level``.

    Level 1 instead of NumPy's ``savez_compressed`` (zlib's default, 6): a span's or a clip's
    labels, mostly float mesh coordinates that barely compress, are written in half the
    time (7.8 against 16.9 ms for a 91-frame clip) for 1 % more bytes."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()
