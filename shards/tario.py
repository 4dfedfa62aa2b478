"""Tar I/O: deterministic shard writing and a sample reader that reports damage instead of raising.

Writing: members get fixed metadata (mtime 0, uid/gid 0, mode 0444, no user names),
so the same samples give a byte-identical shard and the same SHA-256. The shard is
written under a temporary name in its folder and renamed when complete.

Reading: :func:`iter_tar_samples` groups consecutive members by key (WebDataset's
rule) and yields one :class:`RawSample` per group. Damage is a value, never an
exception: a group without every required member, a member whose checksum does not
match the sample's metadata, and a tar that stops being readable are each passed to
``on_problem(shard, key, reason)``; reading continues with the next sample or, for
an unreadable tar, ends the shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from emoforge.files import file_sha256  # noqa: F401 (re-exported)
from emoforge.shards.format import META_MEMBER, REQUIRED_MEMBERS, split_member_name

ProblemCallback = Callable[[str, str | None, str], None]


@dataclass
class RawSample:
    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    shard: str = ""

    @property
    def meta(self) -> dict:
        return json.loads(self.members[META_MEMBER])

    @property
    def size_bytes(self) -> int:
        return sum(len(v) for v in self.members.values())


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.handle.write(data)
        self.sha256.update(data)
        self.bytes += len(data)
        return len(data)


@dataclass(frozen=True)
class WrittenShard:
    path: Path
    sha256: str
    size_bytes: int
    keys: tuple[str, ...]


def write_shard(path: Path, samples: Iterable[tuple[str, list[tuple[str, bytes]]]]) -> WrittenShard:
    """Write ``(key, [(member, bytes), ...])`` samples as one tar, atomically; returns its checksum.

    If a file with the same bytes already exists it is left untouched (a rerun rewrites nothing).
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    keys = []
    try:
        with open(partial, "wb") as handle:
            hashing = _HashingWriter(handle)
            with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                for key, members in samples:
                    keys.append(key)
                    for member, data in members:
                        info = tarfile.TarInfo(f"{key}.{member}")
                        info.size = len(data)
                        info.mtime = 0
                        info.mode = 0o444
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        tar.addfile(info, io.BytesIO(data))
            handle.flush()
            os.fsync(handle.fileno())
        digest = hashing.sha256.hexdigest()
        if path.is_file() and path.stat().st_size == hashing.bytes and file_sha256(path) == digest:
            partial.unlink()
        else:
            os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return WrittenShard(path, digest, hashing.bytes, tuple(keys))


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ignore(shard: str, key: str | None, reason: str) -> None:
    return None


def iter_tar_samples(
    path,
    on_problem: ProblemCallback = _ignore,
    required: tuple[str, ...] = REQUIRED_MEMBERS,
    check_checksums: bool = True,
    select: Callable[[str], bool] | None = None,
) -> Iterator[RawSample]:
    """Complete samples of one tar, in stored order; damage goes to ``on_problem`` (see module doc).

    ``select(member)`` limits which members are read into memory (the others are skipped,
    and their checksums not checked); completeness is judged on member names either way.
    """
    path = Path(path)
    shard = path.name
    current: RawSample | None = None
    seen: set[str] = set()

    def finish(sample: RawSample | None) -> RawSample | None:
        if sample is None:
            return None
        missing = [m for m in required if m not in seen]
        if missing:
            on_problem(shard, sample.key, f"incomplete sample: missing {', '.join(missing)}")
            return None
        if check_checksums:
            reason = _checksum_problem(sample)
            if reason:
                on_problem(shard, sample.key, reason)
                return None
        return sample

    try:
        handle = open(path, "rb")
    except OSError as exc:
        on_problem(shard, None, f"cannot open shard: {exc}")
        return
    with handle:
        try:
            with tarfile.open(fileobj=handle, mode="r|") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    parts = split_member_name(info.name)
                    if parts is None:
                        on_problem(shard, None, f"member {info.name!r} is not <key>.<member>")
                        continue
                    key, member = parts
                    if current is None or key != current.key:
                        done = finish(current)
                        if done is not None:
                            yield done
                        current, seen = RawSample(key, shard=shard), set()
                    seen.add(member)
                    if select is None or select(member):
                        extracted = tar.extractfile(info)
                        data = extracted.read() if extracted is not None else b""
                        if len(data) != info.size:
                            raise tarfile.ReadError(f"unexpected end of data in {info.name}")
                        current.members[member] = data
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            # The tar's structure is damaged (truncated, garbage header): what follows is unreadable.
            on_problem(shard, current.key if current else None, f"unreadable tar: {type(exc).__name__}: {exc}")
            return
        done = finish(current)
        if done is not None:
            yield done


def _checksum_problem(sample: RawSample) -> str | None:
    try:
        meta = json.loads(sample.members[META_MEMBER])
    except (KeyError, ValueError) as exc:
        return f"metadata JSON unreadable: {exc}"
    expected = meta.get("members", {})
    for member, data in sample.members.items():
        if member == META_MEMBER:
            continue
        info = expected.get(member)
        if info is None:
            return f"member {member} is not listed in the sample's metadata"
        if info.get("sha256") != bytes_sha256(data):
            return f"checksum mismatch in {member}"
    return None
