"""File helpers every area shares: content hashes and atomic writes.

An atomic write goes to a temporary name beside the target (``.<name>.<pid>.partial``)
and is renamed into place, so a reader never sees half a file and a crash leaves only
a ``*.partial`` that the next run removes.
"""

from __future__ import annotations

import hashlib
import json
import os
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
