"""Download stage: one :class:`~emoforge.curation.sources.Source` in, one :class:`Downloaded` out.

Layout under the downloads folder ``D`` (``DIR/downloads`` in a run)::

    D/<source_id>.<ext>        the media, named from the id, never from a title or URL
    D/<source_id>.info.json    yt-dlp's sanitised info dict (untrusted text), provenance
    D/ledger.sqlite            one row per source: status, reason, size, sha256, provenance
    D/.work/<source_id>/       yt-dlp's partial files while a download is unfinished
    D/.locks/                  flock files: one per source, per-host slots and pacing

How the issue's requirements map onto it:

* **Idempotent**: a source whose ledger row is ``ok`` and whose file is present is
  returned with no network. ``failed`` and ``rejected`` rows are retried on the next
  run; a partial download is resumed from its ``.part`` file (yt-dlp ``continuedl``)
  and the working folder is removed once an item is finished or rejected.
* **Nothing hangs**: yt-dlp runs in a child process (``python -m
  emoforge.curation.download``) in its own process group. The parent watches the
  bytes in the working folder and kills the group when none arrive for
  ``stall_timeout_s`` (this also bounds extraction and a server that trickles one
  byte at a time, which neither ``socket_timeout`` nor a progress hook can catch:
  yt-dlp reads whole blocks) or when ``max_fetch_s`` passes. ``socket_timeout_s``
  bounds each connect and read inside the child.
* **Per-host limits across processes**: ``host_concurrency`` slot files per host,
  held with ``fcntl.flock`` for the whole attempt (the kernel releases them when a
  process dies, so a crashed worker never leaks a slot), and a per-host pacing file
  whose flock serialises starts ``host_min_interval_s`` apart. flock is per machine:
  with Ray on several nodes each node gets its own budget unless ``D`` is on a file
  system with working flock, so divide the limit by the node count or pin downloads
  to one node.
* **Retries**: transient failures (timeouts, refused connections, 5xx/429/403,
  truncated transfers, stalls) are retried ``retries`` times with exponential backoff
  and jitter; yt-dlp's own ``retries`` resume inside one attempt. Bad input (404,
  an HTML page with no video, zero bytes, a corrupt file, a playlist, a live stream,
  too long, too large) is ``rejected`` at once.
* **Local files** are hard-linked into the layout (no copy; falls back to a copy
  across file systems). A hard link shares the inode, so editing the original in
  place edits ours too: the recorded sha256 lets later stages detect that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from emoforge.curation.ledger import Ledger
from emoforge.curation.sources import MEDIA_EXTENSIONS, Source
from emoforge.files import file_sha256, write_text_atomic

__all__ = ["DownloadConfig", "Downloaded", "Downloader", "HostGate", "check_media", "ytdlp_options"]

_ID = re.compile(r"^[0-9a-f]{16}$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_CAP = 2000
_DESCRIPTION_CAP = 5000
_REASON_CAP = 300
_EXTRACTED = "extracted"  # marker the child writes when metadata extraction is done


@dataclass(frozen=True)
class DownloadConfig:
    socket_timeout_s: float = 20.0  # each connect/read inside yt-dlp
    extract_timeout_s: float = 120.0  # kill an attempt whose metadata extraction takes longer
    stall_timeout_s: float = 60.0  # kill an attempt when no media bytes arrive for this long
    max_fetch_s: float = 3 * 3600.0  # kill an attempt that runs longer than this
    retries: int = 2  # further attempts after a transient failure
    backoff_s: float = 2.0  # wait before retry k: backoff_s * 2**k (+ up to 25 % jitter)
    backoff_max_s: float = 60.0
    http_retries: int = 3  # yt-dlp's own retries (resume) inside one attempt
    host_concurrency: int = 2  # simultaneous downloads per host, across processes
    host_min_interval_s: float = 1.0  # between download starts on one host
    max_bytes_per_s: int | None = None  # yt-dlp ratelimit per download
    max_filesize_bytes: int | None = 4 << 30
    max_duration_s: float | None = 4 * 3600.0
    min_short_side_px: int = 512  # faces: prefer formats at least this large on the short side ...
    max_short_side_px: int = 1080  # ... and no larger than needed
    verify_media: bool = True  # decode a frame before accepting a file (needs PyAV)
    poll_s: float = 0.1  # how often the parent checks a running attempt

    def format_selector(self, can_merge: bool = True) -> str:
        """Both sides >= min_short_side_px when offered, else the best there is."""
        big = f"[height>={self.min_short_side_px}][width>={self.min_short_side_px}]"
        if can_merge:
            return f"bv*{big}+ba/b{big}/bv*+ba/b"
        return f"b{big}/b"


@dataclass(frozen=True)
class Downloaded:
    source_id: str
    status: str  # "ok" | "failed" | "rejected"
    reason: str | None
    path: Path | None  # <downloads>/<source_id>.<ext> when ok
    provenance: dict = field(default_factory=dict)  # untrusted text, kept as text; "takedown" always present
    bytes: int = 0
    sha256: str = ""
    attempts: int = 0  # attempts over all runs so far


@dataclass(frozen=True)
class _Attempt:
    status: str
    reason: str | None
    file: Path | None = None
    info: dict | None = None
    archive_key: str | None = None


# --------------------------------------------------------------------------- locks


@contextmanager
def _flock(path: Path, blocking: bool = True) -> Iterator[int | None]:
    """Exclusive flock on ``path``; yields the fd, or None when non-blocking and busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class HostGate:
    """Per-host concurrency slots and start pacing shared by every process using ``lock_dir``."""

    def __init__(self, lock_dir: Path, concurrency: int, min_interval_s: float, poll_s: float = 0.05) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.lock_dir = Path(lock_dir)
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.concurrency = concurrency
        self.min_interval_s = min_interval_s
        self.poll_s = poll_s

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        name = hashlib.sha256(host.encode()).hexdigest()[:16]  # host names never become paths
        while True:
            for k in range(self.concurrency):
                with _flock(self.lock_dir / f"host-{name}.slot{k}", blocking=False) as held:
                    if held is not None:
                        self._pace(name)
                        yield
                        return
            time.sleep(self.poll_s * (1 + random.random()))

    def _pace(self, name: str) -> None:
        if self.min_interval_s <= 0:
            return
        with _flock(self.lock_dir / f"host-{name}.pace") as fd:
            assert fd is not None
            text = os.pread(fd, 64, 0).decode() or "0"
            wait_s = float(text) + self.min_interval_s - time.time()
            if wait_s > 0:
                time.sleep(wait_s)
            stamp = f"{time.time():.6f}".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, stamp, 0)


# --------------------------------------------------------------------------- helpers


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    for prefix in ("www.", "m."):
        if host.startswith(prefix):
            return host[len(prefix) :]
    return host


def _clean_message(text: str) -> str:
    text = _ANSI.sub("", text).replace("\r", " ")
    text = re.sub(r"^\s*ERROR:\s*", "", text)
    text = " ".join(text.split())
    return text[:_REASON_CAP]


def _as_text(value: Any, cap: int = _TEXT_CAP) -> str | None:
    if value is None:
        return None
    return str(value)[:cap]


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def provenance_from_info(info: dict) -> dict:
    """The manifest's provenance fields from a yt-dlp info dict, as plain text and numbers."""
    text = {
        "title": "title",
        "uploader": "uploader",
        "uploader_id": "uploader_id",
        "channel": "channel",
        "channel_id": "channel_id",
        "license": "license",
        "upload_date": "upload_date",
        "webpage_url": "webpage_url",
        "original_url": "original_url",
        "extractor": "extractor_key",
        "extractor_id": "id",
        "format_id": "format_id",
        "vcodec": "vcodec",
        "acodec": "acodec",
    }
    numbers = {"timestamp": "timestamp", "duration_s": "duration", "width": "width", "height": "height", "fps": "fps"}
    provenance: dict[str, Any] = {name: _as_text(info.get(key)) for name, key in text.items()}
    provenance.update({name: _as_number(info.get(key)) for name, key in numbers.items()})
    provenance["description"] = _as_text(info.get("description"), _DESCRIPTION_CAP)
    provenance["takedown"] = False
    return provenance


def check_media(path: Path) -> str | None:
    """Reason a downloaded file is not usable media, or None. Decodes one frame with PyAV."""
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("media checks need PyAV: pip install 'emoforge[video]'") from error
    if path.stat().st_size == 0:
        return "empty: zero-byte file"
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            streams = list(container.streams.video) or list(container.streams.audio)
            if not streams:
                return "corrupt: no audio or video stream"
            for _ in container.decode(streams[0]):
                return None
            return "corrupt: no decodable frame"
    except (av.FFmpegError, OSError, ValueError, EOFError, IndexError) as error:
        # FFmpeg's messages name the file; keep only the cause.
        return f"corrupt: {_clean_message(getattr(error, 'strerror', None) or str(error))}"


def ytdlp_options(config: DownloadConfig, work_dir: Path, source_id: str, logger: Any = None) -> dict:
    """yt-dlp options for one attempt: output named from the id, bounded, quiet."""
    can_merge = shutil.which("ffmpeg") is not None
    options: dict[str, Any] = {
        "quiet": True,
        "noprogress": True,  # `quiet` alone still prints progress (DESIGN.md §6)
        "no_warnings": True,
        "logger": logger,
        "socket_timeout": config.socket_timeout_s,
        "retries": config.http_retries,
        "fragment_retries": config.http_retries,
        "extractor_retries": config.http_retries,
        "file_access_retries": 1,
        "outtmpl": {"default": str(Path(work_dir) / f"{source_id}.%(ext)s")},
        "paths": {},
        "format": config.format_selector(can_merge),
        "format_sort": [f"res:{config.max_short_side_px}"],  # res is the short side
        "noplaylist": True,
        "extract_flat": "in_playlist",  # see a playlist without resolving every entry
        "continuedl": True,
        "overwrites": False,
        "cachedir": False,
        "writeinfojson": False,  # the parent writes <id>.info.json atomically
        "color": {"stdout": "never", "stderr": "never"},
    }
    if config.max_filesize_bytes is not None:
        options["max_filesize"] = config.max_filesize_bytes
    if config.max_bytes_per_s is not None:
        options["ratelimit"] = config.max_bytes_per_s
    return options


# --------------------------------------------------------------------------- the stage


class Downloader:
    """Fetches sources into a downloads folder; safe to call from many processes at once."""

    def __init__(self, config: DownloadConfig = DownloadConfig()) -> None:
        self.config = config

    # Public -----------------------------------------------------------------

    def fetch(self, source: Source, out_dir: Path) -> Downloaded:
        """Fetch ``source`` into ``out_dir`` (the downloads folder). Never raises for bad input."""
        if not _ID.match(source.source_id):
            raise ValueError(f"not a source id: {source.source_id!r}")  # a bug, not bad input
        out_dir = Path(out_dir).resolve()  # the child process reports absolute paths
        (out_dir / ".locks").mkdir(parents=True, exist_ok=True)
        ledger = Ledger(out_dir / "ledger.sqlite")
        with _flock(out_dir / ".locks" / f"{source.source_id}.lock"):
            record = ledger.get(source.source_id)
            if record is not None and record.takedown is not None:
                self._remove_outputs(out_dir, source.source_id)
                provenance = {**record.provenance, "takedown": True}
                return Downloaded(source.source_id, "rejected", f"takedown: {record.takedown}", None, provenance,
                                  attempts=record.attempts)
            if record is not None and record.status == "ok" and record.file_name:
                path = out_dir / record.file_name
                if path.is_file() and path.stat().st_size == record.bytes:
                    return Downloaded(source.source_id, "ok", None, path, record.provenance, record.bytes,
                                      record.sha256, record.attempts)
            if source.kind == "file":
                attempts, outcome = 1, self._take_local(source, out_dir)
            elif source.kind == "url":
                attempts, outcome = self._download_with_retries(source, out_dir)
            else:
                raise ValueError(f"unknown source kind {source.kind!r}")
            return self._settle(source, out_dir, ledger, attempts, outcome)

    # Settling an attempt ----------------------------------------------------

    def _settle(self, source: Source, out_dir: Path, ledger: Ledger, attempts: int, outcome: _Attempt) -> Downloaded:
        source_id = source.source_id
        work = out_dir / ".work" / source_id
        provenance = provenance_from_info(outcome.info) if outcome.info else {"takedown": False}
        if source.kind == "file":
            provenance.update({"source_name": Path(source.location).name, "source_path": source.location})
        status, reason, final, size, digest = outcome.status, outcome.reason, None, 0, ""
        if status == "ok":
            assert outcome.file is not None
            reason = check_media(outcome.file) if self.config.verify_media else None
            if reason is None and outcome.file.stat().st_size == 0:
                reason = "empty: zero-byte file"
            if reason is not None:
                status = "rejected"
                outcome.file.unlink(missing_ok=True)
            else:
                suffix = outcome.file.suffix.lower().lstrip(".")
                final = out_dir / f"{source_id}.{suffix if suffix in MEDIA_EXTENSIONS else 'bin'}"
                size = outcome.file.stat().st_size
                digest = file_sha256(outcome.file)
                if outcome.info is not None:
                    write_text_atomic(out_dir / f"{source_id}.info.json",
                                       json.dumps(outcome.info, ensure_ascii=False, sort_keys=True, indent=1))
                os.replace(outcome.file, final)
        if status != "failed":  # finished or hopeless: nothing left to resume
            shutil.rmtree(work, ignore_errors=True)
        record = ledger.record(source_id, status, reason, final.name if final else None, size, digest,
                               outcome.archive_key, provenance, attempts)
        return Downloaded(source_id, status, reason, final, provenance, size, digest, record.attempts)

    @staticmethod
    def _remove_outputs(out_dir: Path, source_id: str) -> None:
        for path in out_dir.glob(f"{source_id}.*"):
            path.unlink(missing_ok=True)
        shutil.rmtree(out_dir / ".work" / source_id, ignore_errors=True)

    # Local files ------------------------------------------------------------

    def _take_local(self, source: Source, out_dir: Path) -> _Attempt:
        original = Path(source.location)
        suffix = original.suffix.lower().lstrip(".")
        work = out_dir / ".work" / source.source_id
        work.mkdir(parents=True, exist_ok=True)
        staged = work / f"{source.source_id}.{suffix}"
        staged.unlink(missing_ok=True)
        try:
            try:
                os.link(original, staged)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(original, staged)
        except OSError as error:
            return _Attempt("failed", f"unreadable: {error.strerror or error}")
        if source.key.startswith("sha256:") and f"sha256:{file_sha256(staged)}" != source.key:
            staged.unlink()
            return _Attempt("rejected", "changed: file content differs from when it was listed")
        return _Attempt("ok", None, staged)

    # URLs -------------------------------------------------------------------

    def _download_with_retries(self, source: Source, out_dir: Path) -> tuple[int, _Attempt]:
        gate = HostGate(out_dir / ".locks", self.config.host_concurrency, self.config.host_min_interval_s)
        host = _host(source.location)
        attempt = 0
        while True:
            with gate.slot(host):
                outcome = self._attempt(source, out_dir)
            attempt += 1
            if outcome.status != "failed" or attempt > self.config.retries:
                return attempt, outcome
            delay_s = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempt - 1))
            time.sleep(delay_s * (1 + 0.25 * random.random()))

    def _attempt(self, source: Source, out_dir: Path) -> _Attempt:
        """One yt-dlp run in a child process, killed when it stalls or overruns."""
        work = out_dir / ".work" / source.source_id
        work.mkdir(parents=True, exist_ok=True)
        request = work / "request.json"
        result = work / "result.json"
        result.unlink(missing_ok=True)
        (work / _EXTRACTED).unlink(missing_ok=True)
        write_text_atomic(request, json.dumps({
            "url": source.location,
            "source_id": source.source_id,
            "source_key": source.key,
            "extractor": source.extractor or None,
            "ledger": str(out_dir / "ledger.sqlite"),
            "config": asdict(self.config),
        }))
        log_path = work / "child.log"
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "emoforge.curation.download", str(request)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        start_s = time.monotonic()
        last_change_s: float | None = None  # set once extraction is over
        last_bytes = -1
        killed = None
        while child.poll() is None:
            time.sleep(self.config.poll_s)
            now_s = time.monotonic()
            if last_change_s is None:
                if (work / _EXTRACTED).exists():
                    last_change_s = now_s
                elif now_s - start_s > self.config.extract_timeout_s:
                    killed = f"timeout: extraction took over {self.config.extract_timeout_s:g} s"
            if last_change_s is not None:
                # yt-dlp writes whole blocks, so a trickling server shows up here as no growth.
                received = sum(entry.stat().st_size for entry in os.scandir(work)
                               if entry.name.startswith(source.source_id) and entry.is_file())
                if received != last_bytes:
                    last_bytes, last_change_s = received, now_s
                if now_s - last_change_s > self.config.stall_timeout_s:
                    killed = f"stalled: no data for {self.config.stall_timeout_s:g} s"
            elif now_s - start_s > self.config.max_fetch_s:
                killed = f"too slow: still running after {self.config.max_fetch_s:g} s"
            if killed:
                os.killpg(child.pid, signal.SIGKILL)  # the child and any ffmpeg it started
                child.wait()
                return _Attempt("failed", killed)
        if not result.is_file():
            tail = log_path.read_text(errors="replace")[-_REASON_CAP:] if log_path.exists() else ""
            return _Attempt("failed", f"downloader exited {child.returncode}: {_clean_message(tail)}")
        answer = json.loads(result.read_text(encoding="utf-8"))
        file = Path(answer["file"]) if answer.get("file") else None
        if file is not None and (file.resolve().parent != work.resolve() or not file.is_file()):
            return _Attempt("failed", "downloader wrote outside its folder")  # never trust a path from a child
        return _Attempt(answer["status"], answer.get("reason"), file, answer.get("info"), answer.get("archive_key"))


# --------------------------------------------------------------------------- the child process


class _Log:
    """yt-dlp logger that keeps messages instead of printing them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def debug(self, message: str) -> None:
        if not message.startswith("[debug] "):
            self.messages.append(message)

    info = debug

    def warning(self, message: str) -> None:
        self.messages.append(message)

    def error(self, message: str) -> None:
        self.messages.append(message)


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


def classify_error(error: BaseException) -> tuple[str, str]:
    """(status, reason) for a yt-dlp failure: ``rejected`` for bad input, ``failed`` for transient."""
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import ContentTooShortError, UnsupportedError

    inner = error.exc_info[1] if getattr(error, "exc_info", None) else None
    message = _clean_message(str(error))
    for cause in _causes(inner):
        if isinstance(cause, HTTPError):
            status = cause.status
            transient = status in (403, 408, 425, 429) or status >= 500
            return ("failed" if transient else "rejected"), f"http {status}: {_clean_message(cause.reason or '')}"
        if isinstance(cause, UnsupportedError):
            return "rejected", "unsupported: no video found at this URL"
        if isinstance(cause, ContentTooShortError):
            return "failed", f"truncated: got {cause.downloaded} of {cause.expected} bytes"
    lower = message.lower()
    rules = (
        ("did not get any data blocks", "rejected", "empty: server sent zero bytes"),
        ("more expected", "failed", "truncated: "),
        ("timed out", "failed", "timeout: "),
        ("connection refused", "failed", "unreachable: "),
        ("failed to resolve", "failed", "unreachable: "),
        ("name or service not known", "failed", "unreachable: "),
        ("network is unreachable", "failed", "unreachable: "),
        ("connection reset", "failed", "connection reset: "),
        ("remote end closed", "failed", "connection reset: "),
        ("unsupported url", "rejected", "unsupported: no video found at this URL"),
        ("requested format is not available", "rejected", "no format: "),
        ("video unavailable", "rejected", "unavailable: "),
        ("private video", "rejected", "unavailable: "),
        ("sign in", "rejected", "unavailable: "),
    )
    for needle, status, prefix in rules:
        if needle in lower:
            return status, prefix if not prefix.endswith(": ") else prefix + message
    return "failed", f"error: {message}"


def _info_for_disk(ydl: Any, info: dict) -> dict:
    clean = ydl.sanitize_info(info, remove_private_keys=True)
    for entry in [clean, *(clean.get("formats") or []), *(clean.get("requested_formats") or [])]:
        if isinstance(entry, dict):
            entry.pop("http_headers", None)  # may carry cookies or tokens
            entry.pop("cookies", None)
    return clean


def _site_key(ydl: Any, info: dict) -> str | None:
    """"<Extractor>:<id>" when the video's own page is a site extractor's URL (never generic ids)."""
    extractor, video_id, page = info.get("extractor_key"), info.get("id"), info.get("webpage_url")
    if not (extractor and video_id and page) or extractor == "Generic":
        return None
    ie = ydl.get_info_extractor(extractor)
    if ie is None or not ie.suitable(page) or ie.get_temp_id(page) != video_id:
        return None
    return f"{extractor}:{video_id}"


def _child(request_path: Path) -> dict:
    request = json.loads(request_path.read_text(encoding="utf-8"))
    config = DownloadConfig(**request["config"])
    work, source_id = request_path.parent, request["source_id"]
    import yt_dlp
    from yt_dlp.utils import DownloadError, YoutubeDLError

    log = _Log()
    try:
        with yt_dlp.YoutubeDL(ytdlp_options(config, work, source_id, log)) as ydl:
            # Naming the extractor found offline skips yt-dlp's scan of ~1,800 URL patterns.
            info = ydl.extract_info(request["url"], download=False, ie_key=request.get("extractor"))
            kind = info.get("_type", "video")
            if kind != "video":
                count = len(info.get("entries") or [])
                return {"status": "rejected", "reason": f"playlist: {count} entries; list its videos as sources"}
            if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming", "post_live"):
                return {"status": "rejected", "reason": f"live: {info.get('live_status') or 'is_live'}"}
            duration_s = _as_number(info.get("duration"))
            if config.max_duration_s is not None and duration_s is not None and duration_s > config.max_duration_s:
                return {"status": "rejected", "reason": f"too long: {duration_s:g} s > {config.max_duration_s:g} s"}
            archive_key = _site_key(ydl, info)
            if archive_key is not None and archive_key != request["source_key"]:
                first = Ledger(Path(request["ledger"])).finished_with_key(archive_key)
                if first is not None and first != source_id:
                    return {"status": "rejected", "reason": f"duplicate of source {first} ({archive_key})"}
            (work / _EXTRACTED).touch()  # the parent's stall watch starts now
            info = ydl.process_ie_result(info, download=True)
            downloads = info.get("requested_downloads") or []
            file = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
            clean = _info_for_disk(ydl, info)
            if file is None or not file.is_file():
                said = " ".join(m for m in log.messages if "max-filesize" in m or "larger than" in m)
                reason = f"too large: {_clean_message(said)}" if said else "no file written"
                return {"status": "rejected", "reason": reason, "info": clean, "archive_key": archive_key}
            return {"status": "ok", "file": str(file), "info": clean, "archive_key": archive_key}
    except DownloadError as error:
        status, reason = classify_error(error)
        return {"status": status, "reason": reason}
    except YoutubeDLError as error:
        return {"status": "failed", "reason": f"error: {_clean_message(str(error))}"}


def _child_main(argv: list[str]) -> int:
    request_path = Path(argv[0])
    answer = _child(request_path)
    write_text_atomic(request_path.parent / "result.json", json.dumps(answer, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
