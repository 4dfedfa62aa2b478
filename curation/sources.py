"""Ingest sources: turn what a user hands us into deduplicated, typed input items.

A user gives URLs (anything yt-dlp handles, plain http/https files), text files of
URLs (one per line, ``#`` comments), local media files and folders of them
(DESIGN.md §3 step 1). :func:`expand_sources` turns that list into :class:`Source`
records with deterministic ids and a :class:`Rejected` record, with its reason, for
everything it refuses; it never raises for bad input.

Ids come from content, never from titles or file names:

* a URL's id is ``sha256(key)[:16]`` where the key is ``"<Extractor>:<video id>"``
  when a site extractor of yt-dlp recognises the URL offline (so ``youtu.be/X`` and
  ``youtube.com/watch?v=X&t=9`` are one source), and the normalised URL otherwise.
  yt-dlp's own download archive keys generic URLs by file name only
  (``/a/clip.mp4`` and ``/b/clip.mp4`` collide, DESIGN.md §6), so it is not used.
* a local file's id is the sha256 of its bytes (read streaming), so copies of one
  video dedupe and a moved file keeps its id.

Only ``http`` and ``https`` URLs are accepted; ``file://``, ``ftp://``,
``javascript:``, ``data:`` and every other scheme are refused, as are URLs that carry
credentials.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from emoforge.files import file_sha256  # noqa: F401 (re-exported)

__all__ = [
    "MEDIA_EXTENSIONS",
    "Rejected",
    "Source",
    "expand_sources",
    "file_sha256",
    "match_extractor",
    "normalise_url",
    "url_key",
]

VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mov mkv webm avi flv ts mts m2ts mpg mpeg 3gp wmv ogv".split()
)
AUDIO_EXTENSIONS = frozenset("m4a mp3 wav flac ogg opus aac".split())
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS

# Query parameters that only track who clicked; they never select content.
_TRACKING_PARAMS = frozenset(
    "fbclid gclid dclid gbraid wbraid msclkid yclid igshid mc_cid mc_eid _ga _gl "
    "ref_src ref_url spm".split()
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9a-fA-F]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ID_HEX = 16
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One input item. ``location`` is a normalised URL or an absolute file path."""

    source_id: str  # sha256(key)[:16]
    kind: str  # "url" | "file"
    location: str
    key: str  # what the id hashes: "Youtube:dQw4w9WgXcQ", a normalised URL, or "sha256:<hex>"
    origin: str  # where it came from: the raw item, or "<list file>:<line>"
    extractor: str = ""  # yt-dlp extractor that claims the URL ("Generic" if none); "" for files


@dataclass(frozen=True)
class Rejected:
    """An input item we refuse, with why. Its id hashes the raw text, for manifest rows."""

    source_id: str
    item: str  # the raw text as given (untrusted; kept as text)
    reason: str
    origin: str


def _hex_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_ID_HEX]


def _normalise_percent(component: str, safe: str) -> str:
    """Decode %-escapes of unreserved characters, upper-case the rest, escape the unsafe."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    decoded = _PERCENT.sub(fix, component)
    return urllib.parse.quote(decoded, safe=safe + "%")


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    normal = posixpath.normpath(path)
    if normal.startswith("//"):  # normpath keeps a leading double slash
        normal = "/" + normal.lstrip("/")
    if path.endswith("/") and normal != "/":
        normal += "/"
    return normal


def normalise_url(url: str) -> str:
    """Canonical form of an http(s) URL, for ids and dedupe.

    Lower-cases scheme and host (IDNA for non-ASCII hosts), drops default ports,
    fragments, tracking parameters (``utm_*``, ``fbclid``, ...) and dot segments,
    sorts the query and normalises %-escapes. Raises ``ValueError`` with a reason
    for anything that is not a usable http(s) URL; :func:`expand_sources` turns that
    into a :class:`Rejected`.
    """
    text = url.strip()
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError("control characters in URL")
    match = _SCHEME.match(text)
    if not match:
        raise ValueError("not a URL (no scheme) and not an existing path")
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"scheme {scheme!r} refused: only http and https")
    parts = urllib.parse.urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL carries credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("URL has no host")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise ValueError(f"bad host name: {error}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError("bad port") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _normalise_percent(_remove_dot_segments(parts.path), safe="/:@!$&'()*+,;=")
    pairs = [
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not (name.lower().startswith("utm_") or name.lower() in _TRACKING_PARAMS)
    ]
    query = urllib.parse.urlencode(sorted(pairs), quote_via=urllib.parse.quote, safe="")
    return urllib.parse.urlunsplit((scheme, netloc, path, query, ""))


def _site_extractors() -> list:
    import yt_dlp.extractor  # heavy: only when URLs are given (the `curation` extra)

    return [ie for ie in yt_dlp.extractor.gen_extractor_classes() if ie.ie_key() != "Generic"]


_EXTRACTORS: list | None = None


def match_extractor(normalised: str) -> tuple[str, str | None]:
    """(yt-dlp extractor key, video id or None) for a normalised URL, without network.

    ``("Generic", None)`` when no site extractor claims the URL.
    """
    global _EXTRACTORS
    if _EXTRACTORS is None:
        _EXTRACTORS = _site_extractors()
    for ie in _EXTRACTORS:
        if ie.suitable(normalised):
            return ie.ie_key(), ie.get_temp_id(normalised) or None
    return "Generic", None


def url_key(normalised: str) -> str:
    """Dedupe key of a normalised URL: ``"<Extractor>:<id>"`` when a site extractor
    recognises it without network, else the URL itself (generic ids are file names)."""
    extractor, video_id = match_extractor(normalised)
    return f"{extractor}:{video_id}" if video_id else normalised


def _is_media(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in MEDIA_EXTENSIONS


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(head) - 4  # a multi-byte character cut by the 8 KiB read
    return True


class _Collector:
    """Accumulates sources in input order and dedupes them by id."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.rejected: list[Rejected] = []
        self._seen: dict[str, Source] = {}

    def reject(self, item: str, reason: str, origin: str) -> None:
        self.rejected.append(Rejected(_hex_id(f"{origin}\n{item}"), item, reason, origin))

    def add(self, source: Source) -> None:
        first = self._seen.get(source.source_id)
        if first is not None:
            self.reject(source.location, f"duplicate of source {first.source_id} ({first.origin})", source.origin)
            return
        self._seen[source.source_id] = source
        self.sources.append(source)

    def add_url(self, text: str, origin: str) -> None:
        try:
            normalised = normalise_url(text)
        except ValueError as error:
            self.reject(text, str(error), origin)
            return
        extractor, video_id = match_extractor(normalised)
        key = f"{extractor}:{video_id}" if video_id else normalised
        self.add(Source(_hex_id(key), "url", normalised, key, origin, extractor))

    def add_file(self, path: Path, origin: str) -> None:
        try:
            digest = file_sha256(path)
        except OSError as error:
            self.reject(str(path), f"unreadable: {error.strerror or error}", origin)
            return
        key = f"sha256:{digest}"
        self.add(Source(digest[:_ID_HEX], "file", str(path), key, origin))

    def add_list(self, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            self.reject(str(path), f"unreadable: {error.strerror or error}", str(path))
            return
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                self.add_url(text, f"{path}:{number}")

    def add_folder(self, folder: Path) -> None:
        # Sorted walk that follows no links and skips hidden entries: deterministic, no loops.
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(root) / name
                if not name.startswith(".") and _is_media(path) and not path.is_symlink():
                    self.add_file(path, str(folder))


def expand_sources(items: list[str]) -> tuple[list[Source], list[Rejected]]:
    """Expand URLs, URL-list files, media files and folders into deduplicated sources.

    An item that names an existing path is local: a folder is searched recursively for
    media files (hidden entries and links skipped), a file with a media extension is a
    source, any other text file is a URL list. Anything else must be an http(s) URL.
    Order follows the input; a later duplicate becomes a :class:`Rejected` naming the
    first. Never raises for bad input.
    """
    collector = _Collector()
    for item in items:
        text = item.strip()
        if not text:
            continue
        if _SCHEME.match(text) and not Path(text).exists():
            collector.add_url(text, text)
            continue
        path = Path(text).expanduser()
        if not path.exists():
            collector.reject(text, "no such file or folder, and not a URL", text)
            continue
        path = path.resolve()
        if path.is_dir():
            collector.add_folder(path)
        elif _is_media(path):
            collector.add_file(path, text)
        elif _looks_like_text(path):
            collector.add_list(path)
        else:
            collector.reject(text, "local file is neither media (by extension) nor a text URL list", text)
    return collector.sources, collector.rejected
