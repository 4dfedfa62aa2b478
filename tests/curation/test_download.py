"""Download stage against a real HTTP server on 127.0.0.1 (yt-dlp's generic extractor)."""

import hashlib
import json
import os
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from emoforge.curation.download import DownloadConfig, Downloader, HostGate, ytdlp_options
from emoforge.curation.ledger import Ledger
from emoforge.curation.sources import expand_sources

HOSTILE_TITLE = "../../etc/passwd <script>alert(1)</script>"
FAST = DownloadConfig(
    socket_timeout_s=1.0,
    extract_timeout_s=4.0,
    stall_timeout_s=1.5,
    retries=0,
    http_retries=0,
    backoff_s=0.05,
    host_concurrency=8,
    host_min_interval_s=0.0,
    poll_s=0.05,
)


def _make_mp4(path: Path) -> None:
    """A few frames of H.264 + AAC."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000, layout="mono")
        for k in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * k, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = (0.1 * np.sin(np.arange(4096) * 2 * np.pi * 440 / 16000)).astype(np.float32)
        for start in range(0, 4096, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


class _Server:
    def __init__(self, mp4: bytes) -> None:
        self.mp4 = mp4
        self.hits: Counter[str] = Counter()
        self.flaky_failures = 0  # how many more /flaky.mp4 requests answer 503
        self.release = threading.Event()  # lets stalled handlers end at teardown
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: bytes, content_type: str = "video/mp4", length: int | None = None):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                with server.lock:
                    server.hits[path] += 1
                    flaky = path == "/flaky.mp4" and server.flaky_failures > 0
                    if flaky:
                        server.flaky_failures -= 1
                mp4 = server.mp4
                if path in ("/a/clip.mp4", "/b/clip.mp4", "/v/clip.mp4", "/x/..%2F..%2Fetc%2Fpasswd%3Cscript%3E.mp4"):
                    self._send(mp4)
                elif path == "/flaky.mp4":
                    self.send_error(503) if flaky else self._send(mp4)
                elif path == "/page.html":
                    self._send(b"<html><head><title>no video</title></head><body>hello</body></html>", "text/html")
                elif path == "/hostile.html":  # the title arrives through JSON-LD, as on real sites
                    meta = json.dumps({"@context": "https://schema.org", "@type": "VideoObject",
                                       "name": HOSTILE_TITLE, "contentUrl": server.url("/v/clip.mp4")}).replace("<", "\\u003c")
                    body = f"<html><head><script type='application/ld+json'>{meta}</script></head></html>"
                    self._send(body.encode(), "text/html")
                elif path == "/stall.mp4":  # headers, then silence
                    self._send(b"", length=len(mp4))
                    self.wfile.flush()
                    server.release.wait(20)
                elif path == "/trickle.mp4":  # one byte every 0.2 s: never silent for a whole socket timeout
                    self._send(b"", length=len(mp4))
                    for k in range(len(mp4)):
                        if server.release.wait(0.2):
                            return
                        try:
                            self.wfile.write(mp4[k : k + 1])
                            self.wfile.flush()
                        except OSError:  # the downloader gave up, as it should
                            return
                elif path == "/truncated.mp4":  # announces the whole file, sends half, closes
                    self._send(mp4[: len(mp4) // 2], length=len(mp4))
                elif path == "/cut.mp4":  # a truncated file served honestly
                    self._send(mp4[: len(mp4) // 2])
                elif path == "/corrupt.mp4":
                    self._send(np.random.default_rng(0).bytes(len(mp4)))
                elif path == "/zero.mp4":
                    self._send(b"")
                else:
                    self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    _make_mp4(path)
    return path.read_bytes()


@pytest.fixture
def server(mp4_bytes):
    server = _Server(mp4_bytes)
    yield server
    server.close()


def _source(server, path):
    sources, rejected = expand_sources([server.url(path)])
    assert not rejected
    return sources[0]


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_downloads_are_named_by_id_deduped_and_not_redone(server, mp4_bytes, tmp_path):
    sources, rejected = expand_sources(
        [
            server.url("/a/clip.mp4?x=1&y=2"),
            server.url("/b/clip.mp4"),
            server.url("/a/clip.mp4?y=2&x=1#again"),  # the first one again
        ]
    )
    assert len(sources) == 2 and len(rejected) == 1
    out = tmp_path / "downloads"
    results = [Downloader(FAST).fetch(source, out) for source in sources]

    for source, result in zip(sources, results):
        assert (result.status, result.reason) == ("ok", None)
        assert result.path == out / f"{source.source_id}.mp4"
        assert result.path.read_bytes() == mp4_bytes
        assert result.bytes == len(mp4_bytes) and result.sha256 == hashlib.sha256(mp4_bytes).hexdigest()
        assert result.provenance["extractor"] == "Generic" and result.provenance["extractor_id"] == "clip"
        assert result.provenance["webpage_url"] == source.location and result.provenance["takedown"] is False
        info = json.loads((out / f"{source.source_id}.info.json").read_text())
        assert info["id"] == "clip" and "http_headers" not in info
    # yt-dlp's archive would call these the same video ("generic clip"); they are two files.
    assert results[0].path != results[1].path
    assert not (out / ".work" / sources[0].source_id).exists()  # finished: working folder gone
    hits = dict(server.hits)
    assert hits == {"/a/clip.mp4": 2, "/b/clip.mp4": 2}  # extraction + download, once per URL

    again = [Downloader(FAST).fetch(source, out) for source in sources]
    assert dict(server.hits) == hits  # the rerun did no network
    assert [(r.status, r.path, r.sha256, r.attempts) for r in again] == [
        (r.status, r.path, r.sha256, 1) for r in results
    ]


@pytest.mark.parametrize(
    "path, status, reason",
    [
        ("/missing.mp4", "rejected", "http 404"),
        ("/page.html", "rejected", "unsupported: no video found"),
        ("/zero.mp4", "rejected", "empty"),
        ("/truncated.mp4", "failed", "truncated"),
        ("/cut.mp4", "rejected", "corrupt"),
        ("/corrupt.mp4", "rejected", "corrupt"),
    ],
)
def test_bad_input_becomes_a_row_with_a_reason(server, tmp_path, path, status, reason):
    source = _source(server, path)
    out = tmp_path / "downloads"
    result = Downloader(FAST).fetch(source, out)
    assert result.status == status and reason in result.reason and result.path is None
    record = Ledger(out / "ledger.sqlite").get(source.source_id)
    assert (record.status, record.reason, record.attempts) == (status, result.reason, 1)
    assert not any(p.suffix == ".mp4" for p in out.glob("*"))  # nothing half-done among the outputs
    if status == "rejected":
        assert not (out / ".work" / source.source_id).exists()


def test_unreachable_host_fails_fast(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sources, _ = expand_sources([f"http://127.0.0.1:{port}/clip.mp4"])
    start = time.monotonic()
    result = Downloader(FAST).fetch(sources[0], tmp_path)
    assert result.status == "failed" and result.reason.startswith("unreachable")
    assert time.monotonic() - start < 4


@pytest.mark.parametrize("path", ["/stall.mp4", "/trickle.mp4"])
def test_a_stalled_or_trickling_server_cannot_hang_the_run(server, tmp_path, path):
    start = time.monotonic()
    result = Downloader(FAST).fetch(_source(server, path), tmp_path)
    elapsed_s = time.monotonic() - start
    assert result.status == "failed"
    assert result.reason.startswith(("timeout", "stalled")), result.reason
    assert elapsed_s < 4, elapsed_s  # the trickle alone would take minutes


def test_hostile_titles_never_reach_paths(server, mp4_bytes, tmp_path):
    out = tmp_path / "run" / "downloads"
    page = _source(server, "/hostile.html")
    named = _source(server, "/x/..%2F..%2Fetc%2Fpasswd%3Cscript%3E.mp4")
    results = [Downloader(FAST).fetch(source, out) for source in (page, named)]
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].provenance["title"] == HOSTILE_TITLE  # kept verbatim, as text
    assert "passwd" in results[1].provenance["title"]
    expected = {out / f"{s.source_id}{suffix}" for s in (page, named) for suffix in (".mp4", ".info.json")}
    expected |= {out / "ledger.sqlite"}
    outputs = {p for p in _files_under(tmp_path) if ".locks" not in p.parts and not p.name.startswith("ledger.sqlite-")}
    assert outputs == expected
    assert all("passwd" not in str(p) and "<" not in str(p) for p in _files_under(tmp_path))


def test_a_failed_item_is_retried_on_the_next_run(server, tmp_path):
    source = _source(server, "/flaky.mp4")
    server.flaky_failures = 1
    first = Downloader(FAST).fetch(source, tmp_path)
    assert first.status == "failed" and first.reason.startswith("http 503")
    assert server.hits["/flaky.mp4"] == 1

    second = Downloader(FAST).fetch(source, tmp_path)  # the next run tries it again
    assert second.status == "ok" and second.attempts == 2
    assert Ledger(tmp_path / "ledger.sqlite").get(source.source_id).status == "ok"


def test_transient_failures_are_retried_with_backoff_within_a_run(server, tmp_path):
    server.flaky_failures = 2
    start = time.monotonic()
    config = DownloadConfig(**{**FAST.__dict__, "retries": 2, "backoff_s": 0.2})
    result = Downloader(config).fetch(_source(server, "/flaky.mp4"), tmp_path)
    assert result.status == "ok" and result.attempts == 3
    assert server.hits["/flaky.mp4"] == 4  # two 503s, then extraction and download
    assert time.monotonic() - start >= 0.2 + 0.4  # waited out both backoffs (0.2 s, then 0.4 s)


def test_local_files_are_linked_into_the_layout_and_takedowns_stick(mp4_bytes, tmp_path):
    media = tmp_path / "dump"
    media.mkdir()
    (media / f"evil {HOSTILE_TITLE.replace('/', '_')}.mp4").write_bytes(mp4_bytes)
    (media / "broken.mp4").write_bytes(mp4_bytes[: len(mp4_bytes) // 3])
    sources, rejected = expand_sources([str(media)])
    assert not rejected and len(sources) == 2
    out = tmp_path / "downloads"
    results = {Path(s.location).name: Downloader(FAST).fetch(s, out) for s in sources}
    good = results[f"evil {HOSTILE_TITLE.replace('/', '_')}.mp4"]
    assert good.status == "ok" and good.path.name == f"{good.source_id}.mp4"
    assert os.stat(good.path).st_ino == os.stat(media / good.provenance["source_name"]).st_ino  # a hard link
    assert results["broken.mp4"].status == "rejected" and results["broken.mp4"].reason.startswith("corrupt")

    Ledger(out / "ledger.sqlite").mark_takedown(good.source_id, "request 17")
    taken = Downloader(FAST).fetch(sources[[s.source_id for s in sources].index(good.source_id)], out)
    assert (taken.status, taken.reason, taken.path) == ("rejected", "takedown: request 17", None)
    assert taken.provenance["takedown"] is True and not good.path.exists()


def test_host_gate_limits_concurrency_and_paces_starts(tmp_path):
    gate = HostGate(tmp_path, concurrency=2, min_interval_s=0.1, poll_s=0.01)
    active, peak, starts, lock = [0], [0], [], threading.Lock()

    def work(_):
        with gate.slot("example.com"):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                starts.append(time.monotonic())
            time.sleep(0.15)
            with lock:
                active[0] -= 1

    with ThreadPoolExecutor(6) as pool:  # each call opens its own descriptors: flock behaves as across processes
        list(pool.map(work, range(6)))
    starts.sort()
    assert peak[0] == 2
    # Starts are 0.1 s apart at the gate; they are recorded a thread switch later, which on a
    # loaded 2-core machine shifted one by 8 ms. Unpaced, two slots would start together.
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.08


def test_format_choice_prefers_a_short_side_of_at_least_512(tmp_path):
    import yt_dlp

    def chosen(formats):
        info = {"id": "x", "title": "x", "extractor": "test", "extractor_key": "Test",
                "webpage_url": "http://example.com/x", "formats": formats}
        with yt_dlp.YoutubeDL(ytdlp_options(DownloadConfig(), tmp_path, "0" * 16)) as ydl:
            result = ydl.process_ie_result(info, download=False)
        return result["format_id"]

    def video(name, width, height, tbr):
        return {"format_id": name, "url": f"http://example.com/{name}", "ext": "mp4", "width": width,
                "height": height, "tbr": tbr, "vcodec": "avc1", "acodec": "none"}

    audio = {"format_id": "audio", "url": "http://example.com/a", "ext": "m4a", "vcodec": "none", "acodec": "mp4a", "tbr": 128}
    landscape = [video("360p", 640, 360, 800), video("720p", 1280, 720, 2500), video("2160p", 3840, 2160, 20000), audio]
    assert chosen(landscape) == "720p+audio"  # not 360p, and not 4K either (res:1080)
    portrait = [video("p360", 360, 640, 700), video("p540", 540, 960, 1500), audio]
    assert chosen(portrait) == "p540+audio"  # the short side is the width here
    small = [video("240p", 426, 240, 300), video("480p", 854, 480, 1200), audio]
    assert chosen(small) == "480p+audio"  # nothing large enough: the best there is


def test_a_relative_downloads_folder_works(server, mp4_bytes, tmp_path, monkeypatch):
    """`emoforge curate ... --out demo-out` passes a relative folder (this once failed every download)."""
    monkeypatch.chdir(tmp_path)
    result = Downloader(FAST).fetch(_source(server, "/a/clip.mp4"), Path("relative/downloads"))
    assert (result.status, result.reason) == ("ok", None)
    assert result.path.read_bytes() == mp4_bytes and result.path.is_absolute()
